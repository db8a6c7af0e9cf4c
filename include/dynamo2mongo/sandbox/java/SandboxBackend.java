import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.CursorNotFoundException;
import de.bwaldvogel.mongo.oplog.Oplog;

import io.netty.channel.Channel;

import java.util.List;

/**
 * mongo-java-server's memory backend with {@link SandboxDatabase}s and the {@link ChangeLog} as its oplog;
 * renames are logged, and change stream batches carry MongoDB's postBatchResumeToken.
 */
final class SandboxBackend extends MemoryBackend {

    private static final long MAX_AWAIT_MILLIS = 50;

    private final ChangeLog changes = new ChangeLog(this);

    ChangeLog changes() {
        return changes;
    }

    @Override
    public SandboxDatabase openOrCreateDatabase(String databaseName) {
        return new SandboxDatabase(databaseName, getCursorRegistry(), this);
    }

    @Override
    protected Oplog createOplog() {
        return changes;
    }

    @Override
    public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
        Document response = super.handleCommand(channel, databaseName, command, query);
        if (command.equalsIgnoreCase("renameCollection") && databaseName.equals("admin")) {
            String from = query.get(command).toString();
            String to = query.get("to").toString();
            if (!from.equals(to) && ChangeLog.recorded(from)) {
                changes.recordRename(from, to);
            }
        }
        return response;
    }

    @Override
    protected Document handleGetMore(String databaseName, String command, Document query) {
        long cursorId = ((Number) query.get(command)).longValue();
        Cursor cursor;
        try {
            cursor = getCursorRegistry().getCursor(cursorId);
        } catch (CursorNotFoundException e) {
            cursor = null;
        }
        if (!(cursor instanceof ChangeStreamCursor stream)) {
            return super.handleGetMore(databaseName, command, query);
        }
        int batchSize = ((Number) query.getOrDefault("batchSize", 0)).intValue();
        int known = changes.size();
        List<Document> batch = stream.takeDocuments(batchSize);
        long await = ((Number) query.getOrDefault("maxTimeMS", 0)).longValue();
        if (batch.isEmpty() && await > 0) {
            // Commands run on the network threads, so the wait is kept short: long enough that an idle
            // relay does not spin, short enough not to hold other connections on the same thread.
            try {
                changes.awaitBeyond(known, Math.min(await, MAX_AWAIT_MILLIS));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            batch = stream.takeDocuments(batchSize);
        }
        if (stream.isEmpty()) {
            getCursorRegistry().remove(stream);
        }
        return changeStreamBatch(databaseName + "." + query.get("collection"), "nextBatch", batch, stream);
    }

    static Document changeStreamBatch(String namespace, String key, List<Document> batch, ChangeStreamCursor cursor) {
        Document reply = new Document("id", cursor.isEmpty() ? 0L : cursor.getId())
            .append("ns", namespace)
            .append(key, batch)
            .append("postBatchResumeToken", cursor.resumeToken());
        Document response = new Document("cursor", reply);
        Utils.markOkay(response);
        return response;
    }
}
