import NIOCore
import Testing

@testable import Switchboard

@Suite("PhoenixSerializer")
struct PhoenixSerializerTests {
    // MARK: vsn negotiation (§2.3)

    @Test func negotiateMissingVsnIsV1() {
        #expect(PhoenixSerializer.negotiate(vsn: nil) == .v1)
    }

    @Test(arguments: [
        ("1.0.0", PhoenixSerializer.v1),
        ("1.0.7", .v1),
        ("2.0.0", .v2),
        ("2.0.5", .v2),
        ("2.0.10", .v2),
    ])
    func negotiateAccepted(_ vsn: String, _ expected: PhoenixSerializer) {
        #expect(PhoenixSerializer.negotiate(vsn: vsn) == expected)
    }

    @Test(arguments: [
        "2.1.0", "2", "2.0", "123.1.1", "abc", "", "1.1.0", "3.0.0", "0.0.0", "2.0.0.0", "2..0", ".2.0.0", "2.0.",
        "2.0.x", " 2.0.0", "2.0.0 ", "v2.0.0", "2.0.0-rc.1", "2.0.0+build", "-2.0.0", "2.-0.0", "٢.0.0", "2.0.٠",
    ])
    func negotiateRefused(_ vsn: String) {
        #expect(PhoenixSerializer.negotiate(vsn: vsn) == nil)
    }

    /// Phoenix parses `vsn` with Elixir's `Version.parse/1`, which rejects numeric parts with a
    /// leading zero (`require_digits/1` → `leading_zero?/1`), so Phoenix refuses these (§2.3:
    /// "not a parseable MAJOR.MINOR.PATCH ⇒ refused").
    @Test(arguments: ["02.0.0", "01.0.0", "2.00.0", "1.00.0", "2.0.05", "1.0.00"])
    func negotiateRefusesLeadingZeros(_ vsn: String) {
        #expect(PhoenixSerializer.negotiate(vsn: vsn) == nil)
    }

    @Test func rawValues() {
        #expect(PhoenixSerializer.v1.rawValue == "1.0.0")
        #expect(PhoenixSerializer.v2.rawValue == "2.0.0")
    }

    // MARK: Decoding text: V1 objects (§4.1)

    func decodeText(_ serializer: PhoenixSerializer, _ text: String) throws(PhoenixDecodeError) -> Message {
        try serializer.decode(text: ByteBuffer(string: text))
    }

    @Test func decodeV1ObjectWithJoinRef() throws {
        let m = try decodeText(.v1, #"{"topic":"room:lobby","event":"phx_join","payload":{"user":"ann"},"ref":"1","join_ref":"1"}"#)
        #expect(
            m
                == Message(
                    joinRef: .string("1"),
                    ref: .string("1"),
                    topic: "room:lobby",
                    event: "phx_join",
                    payload: .json(.object(["user": .string("ann")]))
                )
        )
    }

    @Test func decodeV1ObjectWithoutJoinRefAndNullRef() throws {
        let m = try decodeText(.v1, #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}"#)
        #expect(m.joinRef == .null)
        #expect(m.ref == .null)
        #expect(m.topic == "phoenix")
        #expect(m.event == "heartbeat")
        #expect(m.payload == .json(.object([:])))
    }

    @Test func decodeV1KeepsRefTypes() throws {
        let intRef = try decodeText(.v1, #"{"topic":"t","event":"e","payload":{},"ref":7,"join_ref":3}"#)
        #expect(intRef.ref == .int(7))
        #expect(intRef.joinRef == .int(3))
        let strRef = try decodeText(.v1, #"{"topic":"t","event":"e","payload":{},"ref":"7","join_ref":null}"#)
        #expect(strRef.ref == .string("7"))
        #expect(strRef.joinRef == .null)
    }

    @Test func decodeV1IgnoresExtraKeysInAnyOrder() throws {
        let m = try decodeText(.v1, #"{"extra":[1,2],"ref":"2","payload":{"a":1},"zzz":null,"event":"ev","topic":"t:1"}"#)
        #expect(m == Message(joinRef: .null, ref: .string("2"), topic: "t:1", event: "ev", payload: .json(.object(["a": .int(1)]))))
    }

    @Test func decodeV1KeepsNonObjectPayload() throws {
        let m = try decodeText(.v1, #"{"topic":"t","event":"e","payload":[1,"x"],"ref":null}"#)
        #expect(m.payload == .json(.array([.int(1), .string("x")])))
        let n = try decodeText(.v1, #"{"topic":"t","event":"e","payload":null,"ref":null}"#)
        #expect(n.payload == .json(.null))
    }

    @Test(arguments: [
        // each required key missing
        #"{"event":"e","payload":{},"ref":"1"}"#,
        #"{"topic":"t","payload":{},"ref":"1"}"#,
        #"{"topic":"t","event":"e","ref":"1"}"#,
        #"{"topic":"t","event":"e","payload":{}}"#,
        #"{}"#,
        // topic / event of the wrong type
        #"{"topic":1,"event":"e","payload":{},"ref":"1"}"#,
        #"{"topic":null,"event":"e","payload":{},"ref":"1"}"#,
        #"{"topic":["t"],"event":"e","payload":{},"ref":"1"}"#,
        #"{"topic":"t","event":2,"payload":{},"ref":"1"}"#,
        #"{"topic":"t","event":null,"payload":{},"ref":"1"}"#,
        #"{"topic":"t","event":{},"payload":{},"ref":"1"}"#,
    ])
    func decodeV1Invalid(_ text: String) {
        let error = decodeError { () throws(PhoenixDecodeError) in try decodeText(.v1, text) }
        #expect(error?.isInvalidMessage == true, "\(text) → \(String(describing: error))")
    }

    /// Protocol doc §19: a frame of the other version's shape is refused (the session closes 1007).
    @Test func eachVersionRefusesTheOtherVersionsShape() {
        let v1Heartbeat = #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#
        let v2Heartbeat = #"[null,"1","phoenix","heartbeat",{}]"#
        let onV2 = decodeError { () throws(PhoenixDecodeError) in try decodeText(.v2, v1Heartbeat) }
        #expect(onV2 == .invalidMessage("vsn 2.0.0 messages are JSON arrays, not objects"))
        let onV1 = decodeError { () throws(PhoenixDecodeError) in try decodeText(.v1, v2Heartbeat) }
        #expect(onV1 == .invalidMessage("vsn 1.0.0 messages are JSON objects, not arrays"))
        // JSON text in a binary frame follows the same rule.
        let binaryOnV1 = decodeError { () throws(PhoenixDecodeError) in try PhoenixSerializer.v1.decode(binary: ByteBuffer(string: v2Heartbeat)) }
        #expect(binaryOnV1 != nil)
        let binaryOnV2 = decodeError { () throws(PhoenixDecodeError) in try PhoenixSerializer.v2.decode(binary: ByteBuffer(string: v1Heartbeat)) }
        #expect(binaryOnV2 != nil)
    }

    // MARK: Decoding text: V2 arrays (§4.2)

    @Test func decodeV2Array() throws {
        let m = try decodeText(.v2, #"["3","8","room:42","new_msg",{"body":"hi"}]"#)
        #expect(
            m
                == Message(
                    joinRef: .string("3"),
                    ref: .string("8"),
                    topic: "room:42",
                    event: "new_msg",
                    payload: .json(.object(["body": .string("hi")]))
                )
        )
    }

    @Test func decodeV2KeepsRefTypes() throws {
        let a = try decodeText(.v2, #"[null,"7","phoenix","heartbeat",{}]"#)
        #expect(a.joinRef == .null)
        #expect(a.ref == .string("7"))
        let b = try decodeText(.v2, #"[3,8,"t","e",{}]"#)
        #expect(b.joinRef == .int(3))
        #expect(b.ref == .int(8))
        let c = try decodeText(.v2, #"["1",null,"t","e",{}]"#)
        #expect(c.joinRef == .string("1"))
        #expect(c.ref == .null)
    }

    @Test func decodeV2IgnoresElementsAfterTheFifth() throws {
        let m = try decodeText(.v2, #"["1","2","t","e",{"a":1},"extra",{"more":true},null]"#)
        #expect(m == Message(joinRef: .string("1"), ref: .string("2"), topic: "t", event: "e", payload: .json(.object(["a": .int(1)]))))
    }

    @Test func decodeV2KeepsAnyPayloadType() throws {
        #expect(try decodeText(.v2, #"[null,null,"t","e","text"]"#).payload == .json(.string("text")))
        #expect(try decodeText(.v2, #"[null,null,"t","e",null]"#).payload == .json(.null))
        #expect(try decodeText(.v2, #"[null,null,"t","e",1.5]"#).payload == .json(.double(1.5)))
    }

    @Test(arguments: [
        #"[]"#,
        #"[null]"#,
        #"[null,"1","t","e"]"#,
        #"["1","2","t"]"#,
        // topic / event of the wrong type
        #"[null,"1",1,"e",{}]"#,
        #"[null,"1",null,"e",{}]"#,
        #"[null,"1",{"t":1},"e",{}]"#,
        #"[null,"1","t",5,{}]"#,
        #"[null,"1","t",null,{}]"#,
        #"[null,"1","t",["e"],{}]"#,
    ])
    func decodeV2Invalid(_ text: String) {
        let error = decodeError { () throws(PhoenixDecodeError) in try decodeText(.v2, text) }
        #expect(error?.isInvalidMessage == true, "\(text) → \(String(describing: error))")
    }

    @Test(arguments: [
        "", " ", "{", "[", "not json", #"{"topic":"t""#, #"["1","2","t","e",{}"#, #"["1","2","t","e",{}]x"#, "\u{FEFF}[]",
        // valid JSON that is not an object or array
        "1", "\"text\"", "null", "true", "1.5",
    ])
    func decodeMalformedJSON(_ text: String) {
        for serializer in [PhoenixSerializer.v1, .v2] {
            let error = decodeError { () throws(PhoenixDecodeError) in try decodeText(serializer, text) }
            #expect(error?.isInvalidMessage == true, "\(serializer) \(text) → \(String(describing: error))")
        }
    }

    @Test func decodeTextReadsOnlyReadableBytes() throws {
        var buffer = ByteBuffer(string: "junk[null,\"1\",\"t\",\"e\",{}]")
        buffer.moveReaderIndex(forwardBy: 4)
        let m = try PhoenixSerializer.v2.decode(text: buffer)
        #expect(m.ref == .string("1"))
        #expect(m.topic == "t")
    }

    // MARK: Decoding binary (§5)

    /// §5.2, C→S push: join_ref "1", ref "5", topic "room:1", event "up", payload aa.
    static let clientPush = hexBytes("00 01 01 06 02 31 35 72 6f 6f 6d 3a 31 75 70 aa")

    @Test func decodeBinaryClientPushWorkedExample() throws {
        let m = try PhoenixSerializer.v2.decode(binary: ByteBuffer(bytes: Self.clientPush))
        #expect(m.joinRef == .string("1"))
        #expect(m.ref == .string("5"))
        #expect(m.topic == "room:1")
        #expect(m.event == "up")
        #expect(m.payload.binary?.readableArray == [0xAA])
        #expect(m.payload.json == nil)
        #expect(m == Message(joinRef: .string("1"), ref: .string("5"), topic: "room:1", event: "up", payload: .binary(ByteBuffer(bytes: [0xAA]))))
    }

    @Test func decodeBinaryRespectsReaderIndex() throws {
        var buffer = ByteBuffer(bytes: [0xFF, 0xEE] + Self.clientPush)
        buffer.moveReaderIndex(forwardBy: 2)
        let m = try PhoenixSerializer.v2.decode(binary: buffer)
        #expect(m.topic == "room:1")
        #expect(m.payload.binary?.readableArray == [0xAA])
    }

    @Test func decodeBinaryZeroLengthRefsAreNull() throws {
        // join_ref "", ref "", topic "room:1", event "up", payload 01 02
        let bytes = hexBytes("00 00 00 06 02 72 6f 6f 6d 3a 31 75 70 01 02")
        let m = try PhoenixSerializer.v2.decode(binary: ByteBuffer(bytes: bytes))
        #expect(m.joinRef == .null)
        #expect(m.ref == .null)
        #expect(m.topic == "room:1")
        #expect(m.event == "up")
        #expect(m.payload.binary?.readableArray == [0x01, 0x02])
    }

    @Test func decodeBinaryZeroLengthJoinRefOnly() throws {
        // join_ref "", ref "12", topic "t", event "e", payload empty
        let bytes = hexBytes("00 00 02 01 01 31 32 74 65")
        let m = try PhoenixSerializer.v2.decode(binary: ByteBuffer(bytes: bytes))
        #expect(m.joinRef == .null)
        #expect(m.ref == .string("12"))
        #expect(m.topic == "t")
        #expect(m.event == "e")
        #expect(m.payload.binary?.readableBytes == 0)
    }

    @Test(arguments: [
        // empty
        "",
        // truncated header: kind only, partial length bytes
        "00", "00 01", "00 01 01", "00 01 01 06",
        // lengths promise more than the frame holds
        "00 01 01 06 02", "00 01 01 06 02 31 35 72 6f 6f 6d 3a 31 75", "00 ff 00 00 00 31",
        // unknown kinds (1, 2 and 4 are server→client or extension kinds; the server decodes only 0)
        "01 01 01 06 02 31 35 72 6f 6f 6d 3a 31 6f 6b bb", "02 06 04 72 6f 6f 6d 3a 31 74 69 63 6b cc", "03 00 00 00 00",
        "04 00 00 00 00", "ff 00 00 00 00",
    ])
    func decodeBinaryUnsupported(_ hex: String) {
        let error = decodeError { () throws(PhoenixDecodeError) in try PhoenixSerializer.v2.decode(binary: ByteBuffer(bytes: hexBytes(hex))) }
        #expect(error?.isUnsupportedBinary == true, "\(hex) → \(String(describing: error))")
    }

    @Test func decodeBinaryOnV1IsUnsupported() {
        let error = decodeError { () throws(PhoenixDecodeError) in try PhoenixSerializer.v1.decode(binary: ByteBuffer(bytes: Self.clientPush)) }
        #expect(error?.isUnsupportedBinary == true, "\(String(describing: error))")
    }

    @Test func decodeJSONTextInsideBinaryFrame() throws {
        let v2 = try PhoenixSerializer.v2.decode(binary: ByteBuffer(string: #"["1","2","room:1","ev",{"a":1}]"#))
        #expect(v2 == Message(joinRef: .string("1"), ref: .string("2"), topic: "room:1", event: "ev", payload: .json(.object(["a": .int(1)]))))
        #expect(v2.payload.binary == nil)

        // A V1 frame in a binary frame is JSON-decoded like a text frame (§4.1), on a V1 socket too.
        let v1 = try PhoenixSerializer.v1.decode(binary: ByteBuffer(string: #"{"topic":"t","event":"e","payload":{},"ref":"9"}"#))
        #expect(v1 == Message(joinRef: .null, ref: .string("9"), topic: "t", event: "e", payload: .json(.object([:]))))
    }

    @Test func malformedJSONInsideBinaryFrameIsRejected() {
        for serializer in [PhoenixSerializer.v1, .v2] {
            for text in ["{", "[1,2", #"{"topic":"t"}"#] {
                let error = decodeError { () throws(PhoenixDecodeError) in try serializer.decode(binary: ByteBuffer(string: text)) }
                #expect(error != nil, "\(serializer) \(text) was accepted")
            }
        }
    }

    // MARK: Encoding binary (§5.2 worked bytes)

    @Test func encodeServerPushKind0() throws {
        let frame = try #require(
            PhoenixSerializer.v2.encodePush(
                joinRef: .string("1"),
                topic: "room:1",
                event: "img",
                payload: .binary(ByteBuffer(bytes: [0x01, 0x02, 0x03]))
            )
        )
        #expect(frame.isBinary)
        #expect(hexString(frame.bytes.readableBytesView) == "00 01 06 03 31 72 6f 6f 6d 3a 31 69 6d 67 01 02 03")
        #expect(frame.bytes.readerIndex >= 10, "needs headroom for a WebSocket header")
        #expect(frame.bytes.readerIndex == PhoenixSerializer.headroom)
    }

    @Test func encodeReplyKind1() throws {
        let frame = try #require(
            PhoenixSerializer.v2.encodeReply(
                joinRef: .string("1"),
                ref: .string("5"),
                topic: "room:1",
                status: "ok",
                response: .binary(ByteBuffer(bytes: [0xBB]))
            )
        )
        #expect(frame.isBinary)
        #expect(hexString(frame.bytes.readableBytesView) == "01 01 01 06 02 31 35 72 6f 6f 6d 3a 31 6f 6b bb")
        #expect(frame.bytes.readerIndex == PhoenixSerializer.headroom)
    }

    @Test func encodeBroadcastKind2() throws {
        let frame = try #require(PhoenixSerializer.v2.encodeBroadcast(topic: "room:1", event: "tick", payload: .binary(ByteBuffer(bytes: [0xCC]))))
        #expect(frame.isBinary)
        #expect(hexString(frame.bytes.readableBytesView) == "02 06 04 72 6f 6f 6d 3a 31 74 69 63 6b cc")
        #expect(frame.bytes.readerIndex == PhoenixSerializer.headroom)
    }

    @Test func encodeBinaryRefsAsText() throws {
        // Null refs are zero-length; an integer ref becomes its decimal text (§5.1).
        let reply = try #require(
            PhoenixSerializer.v2.encodeReply(joinRef: .null, ref: .int(7), topic: "t", status: "ok", response: .binary(ByteBuffer()))
        )
        #expect(hexString(reply.bytes.readableBytesView) == "01 00 01 01 02 37 74 6f 6b")
        let push = try #require(PhoenixSerializer.v2.encodePush(joinRef: .int(12), topic: "t", event: "e", payload: .binary(ByteBuffer())))
        #expect(hexString(push.bytes.readableBytesView) == "00 02 01 01 31 32 74 65")
    }

    @Test func encodeBinaryPayloadUsesOnlyReadableBytes() throws {
        var payload = ByteBuffer(bytes: [0x00, 0x11, 0x22])
        payload.moveReaderIndex(forwardBy: 1)
        let frame = try #require(PhoenixSerializer.v2.encodeBroadcast(topic: "a", event: "b", payload: .binary(payload)))
        #expect(hexString(frame.bytes.readableBytesView) == "02 01 01 61 62 11 22")
    }

    @Test func encodeBinaryRefusesHeaderStringsOver255Bytes() throws {
        let long = String(repeating: "x", count: 256)
        let max = String(repeating: "x", count: 255)
        let empty = Payload.binary(ByteBuffer())
        #expect(PhoenixSerializer.v2.encodeBroadcast(topic: long, event: "e", payload: empty) == nil)
        #expect(PhoenixSerializer.v2.encodeBroadcast(topic: "t", event: long, payload: empty) == nil)
        #expect(PhoenixSerializer.v2.encodePush(joinRef: .string(long), topic: "t", event: "e", payload: empty) == nil)
        #expect(PhoenixSerializer.v2.encodeReply(joinRef: .null, ref: .string(long), topic: "t", status: "ok", response: empty) == nil)
        // Multi-byte characters count in bytes: 128 × "é" = 256 bytes.
        #expect(PhoenixSerializer.v2.encodeBroadcast(topic: String(repeating: "é", count: 128), event: "e", payload: empty) == nil)

        let ok = try #require(PhoenixSerializer.v2.encodeBroadcast(topic: max, event: "e", payload: empty))
        #expect(ok.bytes.readableArray == [0x02, 0xFF, 0x01] + utf8(max) + utf8("e"))
    }

    @Test func binaryPayloadsToV1AreNotEncoded() {
        let payload = Payload.binary(ByteBuffer(bytes: [0x01]))
        #expect(PhoenixSerializer.v1.encodePush(joinRef: .string("1"), topic: "t", event: "e", payload: payload) == nil)
        #expect(PhoenixSerializer.v1.encodeReply(joinRef: .string("1"), ref: .string("2"), topic: "t", status: "ok", response: payload) == nil)
        #expect(PhoenixSerializer.v1.encodeBroadcast(topic: "t", event: "e", payload: payload) == nil)
    }

    // MARK: Encoding JSON (§4)

    func parsed(_ frame: EncodedFrame?) throws -> JSONValue {
        let frame = try #require(frame)
        #expect(!frame.isBinary)
        #expect(frame.bytes.readerIndex == PhoenixSerializer.headroom)
        return try JSONParser.parse(frame.bytes)
    }

    func text(_ frame: EncodedFrame?) throws -> String {
        let frame = try #require(frame)
        return String(decoding: frame.bytes.readableBytesView, as: UTF8.self)
    }

    @Test func v1BroadcastExactText() throws {
        let frame = PhoenixSerializer.v1.encodeBroadcast(topic: "room:42", event: "new_msg", payload: .json(.object(["body": .string("hi")])))
        #expect(try text(frame) == #"{"topic":"room:42","event":"new_msg","payload":{"body":"hi"},"ref":null}"#)
        #expect(try parsed(frame).objectValue.map { Set($0.keys) } == ["topic", "event", "payload", "ref"])
    }

    @Test func v1ReplyHasExactlyFourKeysAndNoJoinRef() throws {
        let value = try parsed(
            PhoenixSerializer.v1.encodeReply(
                joinRef: .string("1"),
                ref: .string("1"),
                topic: "room:lobby",
                status: "ok",
                response: .json(.object([:]))
            )
        )
        let object = try #require(value.objectValue)
        #expect(Set(object.keys) == ["topic", "event", "payload", "ref"])
        #expect(object["topic"] == .string("room:lobby"))
        #expect(object["event"] == .string("phx_reply"))
        #expect(object["ref"] == .string("1"))
        #expect(object["payload"] == .object(["status": .string("ok"), "response": .object([:])]))
    }

    @Test func v1PushHasExactlyFourKeysAndNullRef() throws {
        let value = try parsed(
            PhoenixSerializer.v1.encodePush(
                joinRef: .string("3"),
                topic: "room:42",
                event: "notice",
                payload: .json(.object(["text": .string("saved")]))
            )
        )
        #expect(
            value
                == .object([
                    "topic": .string("room:42"), "event": .string("notice"), "payload": .object(["text": .string("saved")]), "ref": .null,
                ])
        )
    }

    @Test func v1IntegerRefIsWrittenAsInteger() throws {
        let frame = PhoenixSerializer.v1.encodeReply(joinRef: .int(3), ref: .int(8), topic: "t", status: "ok", response: .json(.object([:])))
        #expect(try parsed(frame)["ref"] == .int(8))
        #expect(try text(frame).hasSuffix(#","ref":8}"#))
    }

    @Test func v2BroadcastExactText() throws {
        let frame = PhoenixSerializer.v2.encodeBroadcast(topic: "room:42", event: "new_msg", payload: .json(.object(["body": .string("hi")])))
        #expect(try text(frame) == #"[null,null,"room:42","new_msg",{"body":"hi"}]"#)
    }

    @Test func v2PushExactText() throws {
        let frame = PhoenixSerializer.v2.encodePush(
            joinRef: .string("3"),
            topic: "room:42",
            event: "notice",
            payload: .json(.object(["text": .string("saved")]))
        )
        #expect(try text(frame) == #"["3",null,"room:42","notice",{"text":"saved"}]"#)
    }

    @Test func v2ReplyIsFiveElementArray() throws {
        let value = try parsed(
            PhoenixSerializer.v2.encodeReply(
                joinRef: .string("3"),
                ref: .string("8"),
                topic: "room:42",
                status: "ok",
                response: .json(.object(["id": .int(17)]))
            )
        )
        #expect(
            value
                == .array([
                    .string("3"), .string("8"), .string("room:42"), .string("phx_reply"),
                    .object(["status": .string("ok"), "response": .object(["id": .int(17)])]),
                ])
        )
    }

    @Test func v2IntegerAndNullRefsKeepTheirType() throws {
        let value = try parsed(
            PhoenixSerializer.v2.encodeReply(joinRef: .null, ref: .int(7), topic: "phoenix", status: "ok", response: .json(.object([:])))
        )
        let elements = try #require(value.arrayValue)
        #expect(elements.count == 5)
        #expect(elements[0] == .null)
        #expect(elements[1] == .int(7))
        let frame = PhoenixSerializer.v2.encodeReply(joinRef: .int(3), ref: .int(7), topic: "phoenix", status: "ok", response: .json(.object([:])))
        #expect(try text(frame).hasPrefix(#"[3,7,"phoenix","phx_reply","#))
    }

    @Test func jsonFramesEscapeTopicAndEvent() throws {
        let topic = "room:\"quoted\"\\é\n"
        let event = "ev\u{01}"
        let v2 = try parsed(PhoenixSerializer.v2.encodeBroadcast(topic: topic, event: event, payload: .json(.object([:]))))
        #expect(v2 == .array([.null, .null, .string(topic), .string(event), .object([:])]))
        let v1 = try parsed(PhoenixSerializer.v1.encodeBroadcast(topic: topic, event: event, payload: .json(.object([:]))))
        #expect(v1["topic"] == .string(topic))
        #expect(v1["event"] == .string(event))
    }

    @Test func decodeOfEncodedV2MessageRoundTrips() throws {
        let frame = try #require(
            PhoenixSerializer.v2.encodePush(
                joinRef: .string("9"),
                topic: "room:1",
                event: "ev",
                payload: .json(.object(["list": .array([.int(1), .double(2.5)])]))
            )
        )
        let m = try PhoenixSerializer.v2.decode(text: frame.bytes)
        #expect(
            m
                == Message(
                    joinRef: .string("9"),
                    ref: .null,
                    topic: "room:1",
                    event: "ev",
                    payload: .json(.object(["list": .array([.int(1), .double(2.5)])]))
                )
        )
    }

    // MARK: Frame formats for the hub

    @Test func phoenixV2WebSocketFormatFramesJSONAndBinary() throws {
        let json = try #require(FrameFormat.phoenixV2WebSocket.encode(Broadcast(topic: "r", event: "e", payload: .json(.object(["a": .int(1)])))))
        let body = utf8(#"[null,null,"r","e",{"a":1}]"#)
        #expect(json.readableArray == [0x81, UInt8(body.count)] + body)

        let binary = try #require(
            FrameFormat.phoenixV2WebSocket.encode(Broadcast(topic: "room:1", event: "tick", payload: .binary(ByteBuffer(bytes: [0xCC]))))
        )
        #expect(hexString(binary.readableBytesView) == "82 0e 02 06 04 72 6f 6f 6d 3a 31 74 69 63 6b cc")
    }

    @Test func phoenixV1WebSocketFormatFramesJSONAndSkipsBinary() throws {
        let json = try #require(FrameFormat.phoenixV1WebSocket.encode(Broadcast(topic: "r", event: "e", payload: .json(.object([:])))))
        let body = utf8(#"{"topic":"r","event":"e","payload":{},"ref":null}"#)
        #expect(json.readableArray == [0x81, UInt8(body.count)] + body)
        #expect(FrameFormat.phoenixV1WebSocket.encode(Broadcast(topic: "r", event: "e", payload: .binary(ByteBuffer(bytes: [1])))) == nil)
    }
}
