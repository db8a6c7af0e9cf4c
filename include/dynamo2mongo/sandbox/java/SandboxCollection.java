import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.bson.BsonRegularExpression;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * mongo-java-server's in-memory collection with two things MongoDB has: filters that pin {@code _id} (an
 * equality or {@code $in}, at the top level or in a top-level {@code $and}) are served by the {@code _id}
 * index and then matched in full, instead of scanning the collection; and every write is recorded in the
 * change log with its event's real shape and, when changeStreamPreAndPostImages is on, its images.
 */
final class SandboxCollection extends MemoryCollection {

    private volatile boolean images;

    SandboxCollection(MongoDatabase database, String name, CollectionOptions options, CursorRegistry cursors) {
        super(database, name, options, cursors);
    }

    boolean images() {
        return images;
    }

    void images(boolean enabled) {
        images = enabled;
    }

    private ChangeLog changes() {
        return ChangeLog.recorded(getFullName()) ? ((SandboxDatabase) getDatabase()).changes() : null;
    }

    @Override
    protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit, int batchSize,
                                         Document fieldSelector) {
        Index<Integer> idIndex = idIndex();
        List<Object> ids = idIndex == null ? null : pinnedIds(query);
        if (ids == null) {
            return super.queryDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
        }
        Set<Integer> positions = new LinkedHashSet<>();
        for (Object id : ids) {
            for (Integer position : idIndex.getPositions(new Document(getIdField(), id))) {
                positions.add(position);
            }
        }
        return matchDocuments(query, positions, orderBy, numberToSkip, limit, batchSize, fieldSelector);
    }

    private Index<Integer> idIndex() {
        if (getIdField() == null) {
            return null;
        }
        for (Index<Integer> index : getIndexes()) {
            if (index.isUnique() && index.getKeys().size() == 1 && index.getKeys().get(0).getKey().equals(getIdField())) {
                return index;
            }
        }
        return null;
    }

    /** The only {@code _id}s a document matching {@code query} can have, or null when the filter does not pin them. */
    private List<Object> pinnedIds(Document query) {
        if (query.containsKey(getIdField())) {
            List<Object> ids = idValues(query.get(getIdField()));
            if (ids != null) {
                return ids;
            }
        }
        if (query.get("$and") instanceof List<?> conjuncts) {
            for (Object conjunct : conjuncts) {
                if (conjunct instanceof Document document) {
                    List<Object> ids = pinnedIds(document);
                    if (ids != null) {
                        return ids;
                    }
                }
            }
        }
        return null;
    }

    private static List<Object> idValues(Object condition) {
        if (condition instanceof Document document && document.keySet().stream().anyMatch(key -> key.startsWith("$"))) {
            if (document.containsKey("$eq")) {
                return literal(document.get("$eq")) ? List.of(document.get("$eq")) : null;
            }
            if (document.get("$in") instanceof Collection<?> values && values.stream().allMatch(SandboxCollection::literal)) {
                return new ArrayList<>(values);
            }
            return null;
        }
        return literal(condition) ? List.of(condition) : null;
    }

    // Regular expressions match by pattern and arrays by element: neither is an _id lookup.
    private static boolean literal(Object value) {
        return value != null && !(value instanceof Collection) && !(value instanceof Pattern)
            && !BsonRegularExpression.isRegularExpression(value);
    }

    @Override
    public synchronized List<Document> insertDocuments(List<Document> documents, boolean isOrdered) {
        List<Document> errors = super.insertDocuments(documents, isOrdered);
        ChangeLog changes = changes();
        if (changes != null) {
            Set<Integer> failed = new HashSet<>();
            for (Document error : errors) {
                failed.add(((Number) error.get("index")).intValue());
            }
            int end = isOrdered && !failed.isEmpty() ? failed.iterator().next() : documents.size();
            for (int index = 0; index < end; index++) {
                if (!failed.contains(index)) {
                    changes.record(insert(documents.get(index)));
                }
            }
        }
        return errors;
    }

    private ChangeLog.Change insert(Document document) {
        ChangeLog.Change change = new ChangeLog.Change("insert", getFullName());
        change.id = document.get(getIdField());
        change.fullDocument = document.cloneDeeply();
        return change;
    }

    /** Records the upserted document; the library reports updates by id only, we diff the images ourselves. */
    private static final class Upserts implements Oplog {
        final List<Document> inserted = new ArrayList<>();

        @Override
        public void handleInsert(String namespace, List<Document> documents) {
            inserted.addAll(documents);
        }

        @Override
        public void handleUpdate(String namespace, Document selector, Document query, List<Object> modifiedIds) {
        }

        @Override
        public void handleDelete(String namespace, Document query, List<Object> deletedIds) {
        }

        @Override
        public void handleDropCollection(String namespace) {
        }

        @Override
        public Cursor createCursor(Document changeStreamDocument, String namespace, Aggregation aggregation) {
            throw new UnsupportedOperationException();
        }
    }

    /** A document a write will touch: the stored one, which the write changes in place, and a copy of it now. */
    private record Touched(Document live, Document old) {
    }

    private List<Touched> before(Document selector, Document orderBy, int limit) {
        List<Touched> touched = new ArrayList<>();
        for (Document document : queryDocuments(selector, orderBy, 0, limit, 0, null)) {
            touched.add(new Touched(document, document.cloneDeeply()));
        }
        return touched;
    }

    @Override
    public synchronized Document updateDocuments(Document selector, Document update, ArrayFilters arrayFilters,
                                                 boolean isMulti, boolean isUpsert, Oplog oplog) {
        List<Touched> touched = before(selector, null, isMulti ? 0 : 1);
        Upserts upserts = new Upserts();
        Document result = super.updateDocuments(selector, update, arrayFilters, isMulti, isUpsert, upserts);
        ChangeLog changes = changes();
        if (changes != null) {
            for (Document document : upserts.inserted) {
                changes.record(insert(document));
            }
            touched.forEach(t -> recordUpdate(changes, t.old(), t.live(), update));
        }
        return result;
    }

    private void recordUpdate(ChangeLog changes, Document old, Document live, Document update) {
        if (old.equals(live)) {
            return;
        }
        boolean replacement = update.keySet().stream().noneMatch(key -> key.startsWith("$"));
        ChangeLog.Change change = new ChangeLog.Change(replacement ? "replace" : "update", getFullName());
        change.id = live.get(getIdField());
        Document now = live.cloneDeeply();
        if (replacement) {
            change.fullDocument = now;
        } else {
            change.updateDescription = UpdateDescription.of(old, now, update);
            change.fullDocument = images ? now : null;
        }
        change.preImage = images ? old : null;
        changes.record(change);
    }

    @Override
    public synchronized int deleteDocuments(Document selector, int limit, Oplog oplog) {
        List<Touched> touched = before(selector, null, limit);
        int deleted = super.deleteDocuments(selector, limit, oplog);
        ChangeLog changes = changes();
        if (changes != null) {
            touched.forEach(t -> recordDelete(changes, t.old()));
        }
        return deleted;
    }

    private void recordDelete(ChangeLog changes, Document old) {
        ChangeLog.Change change = new ChangeLog.Change("delete", getFullName());
        change.id = old.get(getIdField());
        change.preImage = images ? old : null;
        changes.record(change);
    }

    @Override
    public synchronized Document findAndModify(Document query) {
        Document selector = (Document) query.getOrDefault("query", new Document());
        List<Touched> touched = before(selector, (Document) query.get("sort"), 1);
        Document result = super.findAndModify(query);
        ChangeLog changes = changes();
        if (changes == null) {
            return result;
        }
        if (touched.isEmpty()) {
            if (query.get("update") != null && Utils.isTrue(query.get("upsert"))) {
                // The upsert built its document from the selector, so the selector finds it.
                for (Document document : queryDocuments(selector, (Document) query.get("sort"), 0, 1, 0, null)) {
                    changes.record(insert(document));
                }
            }
        } else if (Utils.isTrue(query.get("remove"))) {
            touched.forEach(t -> recordDelete(changes, t.old()));
        } else {
            touched.forEach(t -> recordUpdate(changes, t.old(), t.live(), (Document) query.get("update")));
        }
        return result;
    }
}
