import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.bson.Document;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * An update event's updateDescription as MongoDB 5+ logs it: each operator's path with its new value (the
 * highest created ancestor when the update created the path, each appended element for a $push that
 * appends), removed paths for $unset and $rename; paths through a positional operator are diffed below
 * the array, as MongoDB's array diff does (element paths, truncatedArrays when it shrank).
 */
final class UpdateDescription {

    private final Document updatedFields = new Document();
    private final List<String> removedFields = new ArrayList<>();
    private final List<Document> truncatedArrays = new ArrayList<>();

    private UpdateDescription() {
    }

    static Document of(Document before, Document after, Document update) {
        UpdateDescription description = new UpdateDescription();
        for (String operator : update.keySet()) {
            Document paths = (Document) update.get(operator);
            for (String path : paths.keySet()) {
                switch (operator) {
                    case "$unset" -> description.unset(before, after, path);
                    case "$rename" -> {
                        description.unset(before, after, path);
                        description.set(before, after, (String) paths.get(path), false);
                    }
                    default -> description.set(before, after, path, operator.equals("$push"));
                }
            }
        }
        return new Document("updatedFields", description.updatedFields)
            .append("removedFields", description.removedFields)
            .append("truncatedArrays", description.truncatedArrays);
    }

    private void set(Document before, Document after, String path, boolean append) {
        List<String> parts = List.of(path.split("\\.", -1));
        String positional = positionalPrefix(parts);
        if (positional != null) {
            diff(value(before, positional), value(after, positional), positional);
            return;
        }
        for (int depth = 1; depth < parts.size(); depth++) {
            String ancestor = String.join(".", parts.subList(0, depth));
            if (value(before, ancestor) instanceof Missing) {
                path = ancestor;
                break;
            }
        }
        Object old = value(before, path);
        Object now = value(after, path);
        if (Objects.equals(old, now)) {
            return;
        }
        if (append && old instanceof List<?> oldList && now instanceof List<?> newList
            && newList.size() > oldList.size() && newList.subList(0, oldList.size()).equals(oldList)) {
            for (int index = oldList.size(); index < newList.size(); index++) {
                updatedFields.put(path + "." + index, newList.get(index));
            }
            return;
        }
        changed(path, now);
    }

    private void unset(Document before, Document after, String path) {
        String positional = positionalPrefix(List.of(path.split("\\.", -1)));
        if (positional != null) {
            diff(value(before, positional), value(after, positional), positional);
            return;
        }
        Object old = value(before, path);
        Object now = value(after, path);
        if (!(old instanceof Missing) && !Objects.equals(old, now)) {
            changed(path, now);
        }
    }

    private void changed(String path, Object now) {
        if (now instanceof Missing) {
            removedFields.add(path);
        } else {
            updatedFields.put(path, now);
        }
    }

    private void diff(Object old, Object now, String path) {
        if (Objects.equals(old, now)) {
            return;
        }
        if (old instanceof Document oldDocument && now instanceof Document newDocument) {
            for (String key : oldDocument.keySet()) {
                if (!newDocument.containsKey(key)) {
                    removedFields.add(path + "." + key);
                }
            }
            for (String key : newDocument.keySet()) {
                if (oldDocument.containsKey(key)) {
                    diff(oldDocument.get(key), newDocument.get(key), path + "." + key);
                } else {
                    updatedFields.put(path + "." + key, newDocument.get(key));
                }
            }
        } else if (old instanceof List<?> oldList && now instanceof List<?> newList) {
            int common = Math.min(oldList.size(), newList.size());
            for (int index = 0; index < common; index++) {
                diff(oldList.get(index), newList.get(index), path + "." + index);
            }
            for (int index = common; index < newList.size(); index++) {
                updatedFields.put(path + "." + index, newList.get(index));
            }
            if (newList.size() < oldList.size()) {
                truncatedArrays.add(new Document("field", path).append("newSize", newList.size()));
            }
        } else {
            changed(path, now);
        }
    }

    private static String positionalPrefix(List<String> parts) {
        for (int index = 0; index < parts.size(); index++) {
            if (parts.get(index).startsWith("$")) {
                return String.join(".", parts.subList(0, index));
            }
        }
        return null;
    }

    private static Object value(Object root, String path) {
        Object current = root;
        for (String part : path.split("\\.", -1)) {
            if (current instanceof Document document) {
                current = document.containsKey(part) ? document.get(part) : Missing.getInstance();
            } else if (current instanceof List<?> list && part.matches("\\d+") && Integer.parseInt(part) < list.size()) {
                current = list.get(Integer.parseInt(part));
            } else {
                return Missing.getInstance();
            }
        }
        return current;
    }
}
