import de.bwaldvogel.mongo.backend.AbstractCursor;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A change stream on one collection. It keeps its position in the change log, so a getMore reads only the
 * entries written since the previous one, whatever the log's length.
 *
 * Resume tokens are {_data: 16 hex digits of the cluster time + 2 of a kind}: an event, the invalidate that
 * follows a drop or rename, or a high-water mark (the end of what a batch scanned, as MongoDB's
 * postBatchResumeToken; it never stands for an event, so resuming from it never replays one).
 */
final class ChangeStreamCursor extends AbstractCursor {

    private static final int EVENT = 0;
    private static final int INVALIDATE = 1;
    private static final int HIGH_WATER_MARK = 2;
    // MongoDB fills a batch up to 16 MB; a count keeps a reply under the wire's limit without sizing events.
    private static final int DEFAULT_BATCH = 1000;
    private static final int SCAN_CHUNK = 1000;
    private static final Set<String> FULL_DOCUMENT = Set.of("default", "updateLookup", "whenAvailable", "required");
    private static final Set<String> BEFORE_CHANGE = Set.of("off", "whenAvailable", "required");
    private static final Set<String> OPTIONS = Set.of("fullDocument", "fullDocumentBeforeChange", "resumeAfter",
        "startAfter", "startAtOperationTime", "allChangesForCluster", "showExpandedEvents");

    private final ChangeLog log;
    private final String db;
    private final String coll;
    private final Aggregation aggregation;
    private final String fullDocument;
    private final String beforeChange;
    private int next;
    private boolean invalidatePending;
    private boolean closed;
    private Document resumeToken;

    ChangeStreamCursor(long id, ChangeLog log, Document options, String db, String coll, Aggregation aggregation) {
        super(id);
        this.log = log;
        this.db = db;
        this.coll = coll;
        this.aggregation = aggregation;
        for (String key : options.keySet()) {
            if (!OPTIONS.contains(key)) {
                throw new MongoServerError(40415, "Location40415", "BSON field '$changeStream." + key + "' is an unknown field.");
            }
        }
        this.fullDocument = option(options, "fullDocument", "default", FULL_DOCUMENT);
        this.beforeChange = option(options, "fullDocumentBeforeChange", "off", BEFORE_CHANGE);
        Document resumeAfter = (Document) options.get("resumeAfter");
        Document startAfter = (Document) options.get("startAfter");
        BsonTimestamp startAt = (BsonTimestamp) options.get("startAtOperationTime");
        if ((resumeAfter != null ? 1 : 0) + (startAfter != null ? 1 : 0) + (startAt != null ? 1 : 0) > 1) {
            throw new MongoServerError(40674, "Location40674", "Only one type of resume option is allowed, but multiple were found.");
        }
        if (resumeAfter != null || startAfter != null) {
            Document token = resumeAfter != null ? resumeAfter : startAfter;
            long ts = tokenTime(token);
            int kind = tokenKind(token);
            if (kind == INVALIDATE && resumeAfter != null) {
                throw new MongoServerError(260, "InvalidResumeToken",
                    "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.");
            }
            next = log.indexAfter(ts, false);
            if (kind == EVENT && next > 0) {
                ChangeLog.Entry event = log.get(next - 1);
                invalidatePending = event.ts == ts && event.terminal() && matches(event);
            }
            resumeToken = token;
        } else if (startAt != null) {
            next = log.indexAfter(startAt.getValue(), true);
            resumeToken = token(Math.max(0, startAt.getValue() - 1), HIGH_WATER_MARK);
        } else {
            next = log.size();
            resumeToken = token(next == 0 ? 0 : log.get(next - 1).ts, HIGH_WATER_MARK);
        }
    }

    private static String option(Document options, String name, String fallback, Set<String> allowed) {
        Object value = options.getOrDefault(name, fallback);
        if (!allowed.contains(value)) {
            throw new MongoServerError(2, "BadValue", "'" + value + "' is not a valid value for $changeStream." + name);
        }
        return (String) value;
    }

    private static Document token(long ts, int kind) {
        return new Document("_data", String.format("%016X%02X", ts, kind));
    }

    private static long tokenTime(Document token) {
        String data = parseToken(token);
        return Long.parseUnsignedLong(data.substring(0, 16), 16);
    }

    private static int tokenKind(Document token) {
        return Integer.parseInt(parseToken(token).substring(16), 16);
    }

    private static String parseToken(Document token) {
        Object data = token.get("_data");
        if (!(data instanceof String) || !((String) data).matches("[0-9A-F]{18}")) {
            throw new MongoServerError(260, "InvalidResumeToken", "resume token was not issued by this server: " + token);
        }
        return (String) data;
    }

    Document resumeToken() {
        return resumeToken;
    }

    @Override
    public boolean isEmpty() {
        return closed;
    }

    @Override
    public List<Document> takeDocuments(int numberToReturn) {
        int limit = numberToReturn > 0 ? numberToReturn : DEFAULT_BATCH;
        List<Document> batch = new ArrayList<>();
        while (batch.size() < limit && !invalidatePending) {
            List<ChangeLog.Entry> entries = log.slice(next, SCAN_CHUNK);
            if (entries.isEmpty()) {
                break;
            }
            for (ChangeLog.Entry entry : entries) {
                next++;
                resumeToken = token(entry.ts, HIGH_WATER_MARK);
                if (!matches(entry)) {
                    continue;
                }
                Document event = event(entry);
                List<Document> out = aggregation.getStages().isEmpty() ? List.of(event) : aggregation.runStages(Stream.of(event));
                if (!out.isEmpty()) {
                    batch.addAll(out);
                    resumeToken = (Document) event.get("_id");
                }
                if (entry.terminal()) {
                    invalidatePending = true;
                }
                if (batch.size() >= limit || invalidatePending) {
                    break;
                }
            }
        }
        if (invalidatePending && batch.size() < limit) {
            ChangeLog.Entry terminal = log.get(next - 1);
            Document invalidate = new Document("_id", token(terminal.ts, INVALIDATE))
                .append("operationType", "invalidate")
                .append("clusterTime", terminal.clusterTime())
                .append("wallTime", Instant.ofEpochMilli(terminal.wallMillis));
            batch.add(invalidate);
            resumeToken = (Document) invalidate.get("_id");
            invalidatePending = false;
            closed = true;
        }
        return batch;
    }

    private boolean matches(ChangeLog.Entry entry) {
        return entry.db.equals(db) && entry.coll.equals(coll);
    }

    private Document event(ChangeLog.Entry entry) {
        Document event = new Document("_id", token(entry.ts, EVENT))
            .append("operationType", entry.op)
            .append("clusterTime", entry.clusterTime())
            .append("wallTime", Instant.ofEpochMilli(entry.wallMillis))
            .append("ns", new Document("db", entry.db).append("coll", entry.coll));
        switch (entry.op) {
            case "insert":
                event.append("fullDocument", entry.fullDocument.cloneDeeply());
                event.append("documentKey", new Document("_id", entry.id));
                break;
            case "replace":
                event.append("fullDocument", entry.fullDocument.cloneDeeply());
                event.append("documentKey", new Document("_id", entry.id));
                appendBeforeChange(event, entry);
                break;
            case "update":
                event.append("documentKey", new Document("_id", entry.id));
                event.append("updateDescription", entry.updateDescription.cloneDeeply());
                appendPostImage(event, entry);
                appendBeforeChange(event, entry);
                break;
            case "delete":
                event.append("documentKey", new Document("_id", entry.id));
                appendBeforeChange(event, entry);
                break;
            case "rename":
                event.append("to", new Document("db", entry.toDb).append("coll", entry.toColl));
                break;
            default:
                break;
        }
        return event;
    }

    private void appendPostImage(Document event, ChangeLog.Entry entry) {
        switch (fullDocument) {
            case "updateLookup":
                event.append("fullDocument", log.currentDocument(entry.db, entry.coll, entry.id));
                break;
            case "whenAvailable":
                event.append("fullDocument", entry.fullDocument == null ? null : entry.fullDocument.cloneDeeply());
                break;
            case "required":
                if (entry.fullDocument == null) {
                    throw missingImage("post-image", event);
                }
                event.append("fullDocument", entry.fullDocument.cloneDeeply());
                break;
            default:
                break;
        }
    }

    private void appendBeforeChange(Document event, ChangeLog.Entry entry) {
        switch (beforeChange) {
            case "whenAvailable":
                event.append("fullDocumentBeforeChange", entry.preImage == null ? null : entry.preImage.cloneDeeply());
                break;
            case "required":
                if (entry.preImage == null) {
                    throw missingImage("pre-image", event);
                }
                event.append("fullDocumentBeforeChange", entry.preImage.cloneDeeply());
                break;
            default:
                break;
        }
    }

    private static MongoServerError missingImage(String image, Document event) {
        return new MongoServerError(47, "NoMatchingDocument", "Change stream was configured to require a " + image
            + " for all update, delete and replace events, but the " + image + " was not found for event: " + event);
    }
}
