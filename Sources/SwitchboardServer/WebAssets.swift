import Foundation
import Hummingbird
import Logging
import NIOCore

/// The demo page and `switchboard.js`: the files of the target's `Web` resource folder, read once
/// at start and served from memory at `/<file name>`, with `index.html` also at `/` and
/// `dashboard.html` at `/dashboard`.
///
/// Each answer carries its content type, `Cache-Control: no-cache` and an `ETag`, so browsers
/// revalidate (a `304` costs a few bytes) and always see the files of the running server.
struct WebAssets: Sendable {
    /// One file, ready to send.
    struct Asset: Sendable {
        let body: ByteBuffer
        let contentType: String
        let eTag: String
    }

    /// By URL path (`/`, `/switchboard.js`, …).
    let assets: [String: Asset]

    /// Reads every file of the bundled `Web` folder (not recursive). A missing folder (a binary
    /// copied without its `switchboard_SwitchboardServer.resources` next to it) is logged, not fatal.
    static func load(logger: Logger) -> WebAssets {
        guard let folder = Bundle.module.url(forResource: "Web", withExtension: nil),
            let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path)
        else {
            logger.warning("demo page files not found; / answers with plain text")
            return WebAssets(assets: [:])
        }
        var assets: [String: Asset] = [:]
        for name in names.sorted() where !name.hasPrefix(".") {
            guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(name).path) else { continue }
            let asset = Asset(body: ByteBuffer(bytes: data), contentType: contentType(of: name), eTag: eTag(of: data))
            assets["/\(name)"] = asset
            if name == "index.html" { assets["/"] = asset }
            if name == "dashboard.html" { assets["/dashboard"] = asset }
        }
        return WebAssets(assets: assets)
    }

    /// Adds a `GET` route for each file (and `/`).
    func register(on router: Router<BasicRequestContext>) {
        if assets["/"] == nil {
            router.get("/") { _, _ in "Switchboard is running. Phoenix socket: /socket/websocket (the demo page files were not found).\n" }
        }
        for (path, asset) in assets {
            router.get(RouterPath(path)) { request, _ in Self.response(for: asset, request: request) }
        }
    }

    static func response(for asset: Asset, request: Request) -> Response {
        var headers: HTTPFields = [.cacheControl: "no-cache", .eTag: asset.eTag, .xContentTypeOptions: "nosniff"]
        if let tags = request.headers[.ifNoneMatch],
            tags.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.eTag })
        {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }

    static func contentType(of name: String) -> String {
        switch name.split(separator: ".").last.map({ $0.lowercased() }) {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }

    /// A strong validator from the content (64-bit FNV-1a; collisions only cost a stale cache entry).
    static func eTag(of data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return "\"\(String(hash, radix: 16))\""
    }
}
