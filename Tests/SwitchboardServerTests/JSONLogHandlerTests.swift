import Foundation
import Logging
import Synchronization
import Testing

@testable import SwitchboardServer

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test("one JSON object per line with timestamp, level, label, message and metadata")
    func line() throws {
        let lines = Mutex<[String]>([])
        let output = JSONLogHandler.Output { line in lines.withLock { $0.append(line) } }
        var handler = JSONLogHandler(label: "switchboard.test", output: output, now: { Date(timeIntervalSince1970: 1_767_225_600.25) })
        handler.logLevel = .debug
        handler[metadataKey: "switchboard.node"] = "n1"
        let logger = Logger(label: "switchboard.test") { _ in handler }
        logger.info("joined \"room\"\nnext line", metadata: ["switchboard.topic": "room:1", "list": ["a", "b"], "nested": ["k": "v"]])
        logger.trace("not logged: below the level")

        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let text = try #require(written.first)
        #expect(text.hasSuffix("\n"))
        #expect(text.dropLast().contains("\n") == false)  // the message's newline is escaped
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["timestamp"] as? String == "2026-01-01T00:00:00.250Z")
        #expect(object["level"] as? String == "info")
        #expect(object["label"] as? String == "switchboard.test")
        #expect(object["message"] as? String == "joined \"room\"\nnext line")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["switchboard.topic"] as? String == "room:1")
        #expect(metadata["switchboard.node"] as? String == "n1")
        #expect(metadata["list"] as? [String] == ["a", "b"])
        #expect(metadata["nested"] as? [String: String] == ["k": "v"])
    }
}
