import sys

from dynamo2mongo.cli import main

sys.exit(main())
