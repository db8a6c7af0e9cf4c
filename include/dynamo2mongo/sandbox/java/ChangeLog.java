import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.Oplog;

import java.util.ArrayList;
import java.util.List;

/**
 * The server's oplog as MongoDB keeps it for change streams: one entry per change, in commit order, with a
 * strictly increasing cluster time, the wall time in milliseconds and, for collections with
 * changeStreamPreAndPostImages, the document right before and right after the change.
 *
 * Collections record their own writes (they hold the images, and recording under the collection's lock
 * keeps the log in the order the writes were applied), so the library's write callbacks are no-ops here.
 */
final class ChangeLog implements Oplog {

    static final class Entry {
        final long ts;
        final long wallMillis;
        final String op;
        final String db;
        final String coll;
        final Object id;
        final Document fullDocument;
        final Document preImage;
        final Document updateDescription;
        final String toDb;
        final String toColl;

        private Entry(long ts, long wallMillis, Change change) {
            this.ts = ts;
            this.wallMillis = wallMillis;
            this.op = change.op;
            this.db = change.db;
            this.coll = change.coll;
            this.id = change.id;
            this.fullDocument = change.fullDocument;
            this.preImage = change.preImage;
            this.updateDescription = change.updateDescription;
            this.toDb = change.toDb;
            this.toColl = change.toColl;
        }

        boolean terminal() {
            return op.equals("drop") || op.equals("rename");
        }

        BsonTimestamp clusterTime() {
            return new BsonTimestamp(ts);
        }
    }

    /** What a writer hands over; the log adds the times. */
    static final class Change {
        final String op;
        final String db;
        final String coll;
        Object id;
        Document fullDocument;
        Document preImage;
        Document updateDescription;
        String toDb;
        String toColl;

        Change(String op, String namespace) {
            this.op = op;
            this.db = Utils.getDatabaseNameFromFullName(namespace);
            this.coll = Utils.getCollectionNameFromFullName(namespace);
        }
    }

    private final MongoBackend backend;
    private final List<Entry> entries = new ArrayList<>();
    private long lastSeconds;
    private int lastIncrement;

    ChangeLog(MongoBackend backend) {
        this.backend = backend;
    }

    synchronized void record(Change change) {
        long now = System.currentTimeMillis();
        long seconds = now / 1000;
        if (seconds > lastSeconds) {
            lastSeconds = seconds;
            lastIncrement = 1;
        } else {
            lastIncrement++;
        }
        entries.add(new Entry((lastSeconds << 32) | lastIncrement, now, change));
        notifyAll();
    }

    /**
     * Waits until the log holds more than {@code known} entries, at most {@code millis}: an empty getMore
     * of an awaiting change stream answers when there is news or the wait is over, as MongoDB's does.
     */
    synchronized void awaitBeyond(int known, long millis) throws InterruptedException {
        long end = System.currentTimeMillis() + millis;
        for (long left = millis; entries.size() <= known && left > 0; left = end - System.currentTimeMillis()) {
            wait(left);
        }
    }

    /** Index of the first entry whose cluster time is after {@code ts} (or at it, when inclusive). */
    synchronized int indexAfter(long ts, boolean inclusive) {
        int low = 0;
        int high = entries.size();
        while (low < high) {
            int middle = (low + high) >>> 1;
            long value = entries.get(middle).ts;
            if (value < ts || (!inclusive && value == ts)) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        return low;
    }

    synchronized int size() {
        return entries.size();
    }

    synchronized Entry get(int index) {
        return entries.get(index);
    }

    /** A copy, so that readers look documents up without holding the log while writers wait for it. */
    synchronized List<Entry> slice(int from, int max) {
        int to = Math.min(entries.size(), from + max);
        return from >= to ? List.of() : new ArrayList<>(entries.subList(from, to));
    }

    Document currentDocument(String db, String coll, Object id) {
        MongoCollection<?> collection = backend.resolveDatabase(db).resolveCollection(coll, false);
        if (collection == null) {
            return null;
        }
        for (Document document : collection.handleQuery(new Document("_id", id), 0, 1)) {
            return document.cloneDeeply();
        }
        return null;
    }

    ChangeStreamCursor open(long cursorId, Document options, String db, String coll, Aggregation aggregation) {
        return new ChangeStreamCursor(cursorId, this, options, db, coll, aggregation);
    }

    void recordRename(String from, String to) {
        Change change = new Change("rename", from);
        change.toDb = Utils.getDatabaseNameFromFullName(to);
        change.toColl = Utils.getCollectionNameFromFullName(to);
        record(change);
    }

    static boolean recorded(String namespace) {
        String db = Utils.getDatabaseNameFromFullName(namespace);
        String coll = Utils.getCollectionNameFromFullName(namespace);
        return !db.equals("local") && !db.equals("config") && !coll.startsWith("system.");
    }

    @Override
    public void handleInsert(String namespace, List<Document> documents) {
    }

    @Override
    public void handleUpdate(String namespace, Document selector, Document query, List<Object> modifiedIds) {
    }

    @Override
    public void handleDelete(String namespace, Document query, List<Object> deletedIds) {
    }

    @Override
    public void handleDropCollection(String namespace) {
        if (recorded(namespace)) {
            record(new Change("drop", namespace));
        }
    }

    @Override
    public Cursor createCursor(Document changeStreamDocument, String namespace, Aggregation aggregation) {
        // SandboxDatabase opens every change stream itself (it needs the cursor's resume token).
        throw new MongoServerError(115, "CommandNotSupported", "change streams are opened by the sandbox database");
    }
}
