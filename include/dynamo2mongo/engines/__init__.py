"""AWS-native sync engines (DESIGN §2): forward sync on Lambda, backward sync on DMS, and their secrets."""
