import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.DatabaseResolver;
import de.bwaldvogel.mongo.backend.DefaultQueryMatcher;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.backend.aggregation.stage.AggregationStage;
import de.bwaldvogel.mongo.backend.aggregation.stage.SampleStage;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.Oplog;

import io.netty.channel.Channel;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;

/**
 * A database whose collections are {@link SandboxCollection}s, with the commands MongoDB 6+ has for change
 * stream pre- and post-images (create and collMod with changeStreamPreAndPostImages, listCollections
 * reporting it and honouring its filter), change streams read from the {@link ChangeLog}, and a $sample
 * that draws uniformly (the library's sorts by a random comparator, which Java's sort may reject).
 */
final class SandboxDatabase extends MemoryDatabase {

    private static final String IMAGES = "changeStreamPreAndPostImages";

    private final SandboxBackend backend;

    SandboxDatabase(String name, CursorRegistry cursors, SandboxBackend backend) {
        super(name, cursors);
        this.backend = backend;
    }

    ChangeLog changes() {
        return backend.changes();
    }

    @Override
    protected SandboxCollection openOrCreateCollection(String collectionName, CollectionOptions options) {
        return new SandboxCollection(this, collectionName, options, cursorRegistry);
    }

    @Override
    public Document handleCommand(Channel channel, String command, Document query, DatabaseResolver resolver, Oplog oplog) {
        if (command.equalsIgnoreCase("create") && query.containsKey(IMAGES)) {
            boolean images = imagesOption(query.get(IMAGES));
            Document response = super.handleCommand(channel, command, query, resolver, oplog);
            collection(query.get(command).toString()).images(images);
            return response;
        } else if (command.equalsIgnoreCase("collMod")) {
            return collMod(query);
        } else if (command.equalsIgnoreCase("listCollections")) {
            return listCollections(channel, command, query, resolver, oplog);
        } else if (command.equalsIgnoreCase("aggregate")) {
            List<Document> pipeline = Aggregation.parse(query.get("pipeline"));
            if (!pipeline.isEmpty() && pipeline.get(0).containsKey("$changeStream")) {
                return changeStream(query, pipeline, resolver, oplog);
            }
            if (pipeline.stream().anyMatch(stage -> stage.containsKey("$sample"))) {
                return sample(query, pipeline, resolver, oplog);
            }
        }
        return super.handleCommand(channel, command, query, resolver, oplog);
    }

    private SandboxCollection collection(String name) {
        MongoCollection<Integer> collection = resolveCollection(name, false);
        if (collection == null) {
            throw new MongoServerError(26, "NamespaceNotFound", "ns does not exist: " + getFullCollectionNamespace(name));
        }
        return (SandboxCollection) collection;
    }

    private static boolean imagesOption(Object value) {
        if (value instanceof Document document && document.keySet().equals(Set.of("enabled"))
            && document.get("enabled") instanceof Boolean enabled) {
            return enabled;
        }
        throw new MongoServerError(2, "BadValue", IMAGES + " must be {enabled: <bool>}, got " + value);
    }

    private Document collMod(Document query) {
        SandboxCollection collection = collection(query.get("collMod").toString());
        Boolean images = null;
        for (String key : query.keySet()) {
            if (key.equals(IMAGES)) {
                images = imagesOption(query.get(key));
            } else if (!key.equals("collMod") && !key.startsWith("$") && !key.equals("lsid")) {
                throw new MongoServerError(72, "InvalidOptions", "the sandbox server's collMod supports only " + IMAGES + ", not " + key);
            }
        }
        if (images != null) {
            collection.images(images);
        }
        Document response = new Document();
        Utils.markOkay(response);
        return response;
    }

    @SuppressWarnings("unchecked")
    private Document listCollections(Channel channel, String command, Document query, DatabaseResolver resolver, Oplog oplog) {
        Document response = super.handleCommand(channel, command, query, resolver, oplog);
        Document cursor = (Document) response.get("cursor");
        Document filter = (Document) query.get("filter");
        DefaultQueryMatcher matcher = new DefaultQueryMatcher();
        List<Document> listed = new ArrayList<>();
        for (Document description : (List<Document>) cursor.get("firstBatch")) {
            String name = (String) description.get("name");
            if (resolveCollection(name, false) instanceof SandboxCollection collection && collection.images()) {
                ((Document) description.get("options")).put(IMAGES, new Document("enabled", true));
            }
            if (filter == null || matcher.matches(description, filter)) {
                listed.add(Utils.isTrue(query.get("nameOnly")) ? new Document("name", name).append("type", "collection") : description);
            }
        }
        cursor.put("firstBatch", listed);
        return response;
    }

    private Document changeStream(Document query, List<Document> pipeline, DatabaseResolver resolver, Oplog oplog) {
        if (!(query.get("aggregate") instanceof String collectionName)) {
            throw new MongoServerError(115, "CommandNotSupported", "the sandbox server has change streams on collections only");
        }
        Aggregation aggregation = Aggregation.fromPipeline(pipeline.subList(1, pipeline.size()), resolver, this,
            resolveCollection(collectionName, false), oplog);
        aggregation.validate(query);
        Document options = (Document) pipeline.get(0).get("$changeStream");
        ChangeStreamCursor cursor = changes().open(cursorRegistry.generateCursorId(), options, getDatabaseName(),
            collectionName, aggregation);
        Object batchSize = ((Document) query.get("cursor")).get("batchSize");
        // MongoDB's first batch holds at most 101 documents unless the client asks for a size.
        List<Document> batch = batchSize instanceof Number size
            ? (size.intValue() == 0 ? List.of() : cursor.takeDocuments(size.intValue()))
            : cursor.takeDocuments(101);
        if (!cursor.isEmpty()) {
            cursorRegistry.add(cursor);
        }
        return SandboxBackend.changeStreamBatch(getFullCollectionNamespace(collectionName), "firstBatch", batch, cursor);
    }

    private Document sample(Document query, List<Document> pipeline, DatabaseResolver resolver, Oplog oplog) {
        String collectionName = query.get("aggregate").toString();
        Aggregation aggregation = Aggregation.fromPipeline(pipeline, resolver, this, resolveCollection(collectionName, false), oplog);
        List<AggregationStage> stages = aggregation.getStages();
        List<Document> samples = pipeline.stream().filter(stage -> stage.containsKey("$sample")).toList();
        int next = 0;
        for (int index = 0; index < stages.size(); index++) {
            if (stages.get(index) instanceof SampleStage) {
                Document spec = (Document) samples.get(next++).get("$sample");
                stages.set(index, new UniformSample(((Number) spec.get("size")).intValue()));
            }
        }
        aggregation.validate(query);
        Document cursor = new Document("id", 0L)
            .append("ns", getFullCollectionNamespace(collectionName))
            .append("firstBatch", aggregation.computeResult());
        Document response = new Document("cursor", cursor);
        Utils.markOkay(response);
        return response;
    }

    /** A uniform sample without replacement: a partial Fisher-Yates shuffle. */
    private record UniformSample(int size) implements AggregationStage {
        @Override
        public String name() {
            return "$sample";
        }

        @Override
        public Stream<Document> apply(Stream<Document> stream) {
            List<Document> documents = new ArrayList<>(stream.toList());
            int taken = Math.min(size, documents.size());
            ThreadLocalRandom random = ThreadLocalRandom.current();
            for (int index = 0; index < taken; index++) {
                Collections.swap(documents, index, index + random.nextInt(documents.size() - index));
            }
            return documents.subList(0, taken).stream();
        }
    }
}
