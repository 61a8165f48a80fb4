import Hummingbird
import Metrics
import Prometheus
import Switchboard
import SwitchboardHummingbird
import Synchronization

/// `GET /metrics`: every swift-metrics metric of the process (Switchboard's own, Hummingbird's) in
/// the Prometheus text format. Needs the API key like the HTTP API (Prometheus sends it with
/// `authorization: {credentials: <key>}` in its scrape config).
enum MetricsEndpoint {
    static let registry = PrometheusCollectorRegistry()

    private static let bootstrapped = Mutex(false)

    /// Makes Prometheus the swift-metrics backend (once per process; later calls do nothing).
    static func bootstrap() {
        guard
            bootstrapped.withLock({ done in
                defer { done = true }
                return !done
            })
        else { return }
        var factory = PrometheusMetricsFactory(registry: registry)
        // Delivery latency spans microseconds (one node, idle) to seconds (overload).
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
            .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        ]
        MetricsSystem.bootstrap(factory)
        SwitchboardMetrics.registerAll()  // a fresh server's first scrape lists every metric
    }

    /// The scrape: the registry's metrics, then the process metrics and the build info.
    static func body() -> ByteBuffer {
        var buffer = ByteBuffer(bytes: registry.emitToBuffer())
        buffer.writeString(ProcessMetrics.text(version: SwitchboardCommand.version))
        return buffer
    }

    /// Bootstraps the backend if needed and serves it at `/metrics`.
    static func register(on router: Router<BasicRequestContext>, apiKey: String) {
        bootstrap()
        router.group("metrics").add(middleware: APIKeyMiddleware(key: apiKey)).get { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: body())
            )
        }
    }
}
