import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;

import java.net.InetSocketAddress;

/**
 * mongo-java-server on loopback with the oplog on, so change streams work, extended by {@link SandboxBackend}
 * where the sandbox needs MongoDB's behaviour (change events, images, _id lookups, $sample). It announces MongoDB 4.4
 * (wire version 9), the oldest that current PyMongo accepts: the library's own versions report 8. Prints
 * "READY mongodb://127.0.0.1:PORT" once listening and stops when its stdin closes, so it never
 * outlives the process that started it.
 */
public final class MongoSandbox {
    private static final class WireVersion implements MongoVersion {
        @Override
        public java.util.List<Integer> getVersionArray() {
            return java.util.List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    }

    public static void main(String[] args) throws Exception {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        MongoServer server = new MongoServer(new SandboxBackend().version(new WireVersion()));
        server.enableOplog();
        server.bind("127.0.0.1", port);
        InetSocketAddress address = server.getLocalAddress();
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
        System.out.println("READY mongodb://127.0.0.1:" + address.getPort());
        System.out.flush();
        while (System.in.read() != -1) {
            // Only end of input matters: the parent is gone or asked us to stop.
        }
        server.shutdownNow();
        System.exit(0);
    }
}
