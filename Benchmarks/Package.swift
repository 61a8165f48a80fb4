// swift-tools-version:6.1
// Micro-benchmarks for the hot path (ordo-one/benchmark), kept out of the main build.
// Run: cd Benchmarks && swift package benchmark
import PackageDescription

let package = Package(
    name: "switchboard-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "switchboard", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "HubFanOut",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Switchboard", package: "switchboard"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Benchmarks/HubFanOut",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
