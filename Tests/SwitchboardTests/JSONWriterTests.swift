import NIOCore
import Testing

@testable import Switchboard

@Suite("JSONWriter")
struct JSONWriterTests {
    func text(_ value: JSONValue) -> String {
        var bytes: [UInt8] = []
        JSONWriter.write(value, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    func bytes(_ value: JSONValue) -> [UInt8] {
        var bytes: [UInt8] = []
        JSONWriter.write(value, into: &bytes)
        return bytes
    }

    // MARK: Scalars and containers

    @Test func scalars() {
        #expect(text(.null) == "null")
        #expect(text(.bool(true)) == "true")
        #expect(text(.bool(false)) == "false")
        #expect(text(.int(0)) == "0")
        #expect(text(.int(-5)) == "-5")
        #expect(text(.int(Int64.max)) == "9223372036854775807")
        #expect(text(.int(Int64.min)) == "-9223372036854775808")
        #expect(text(.double(1.5)) == "1.5")
        #expect(text(.double(-0.25)) == "-0.25")
        #expect(text(.double(0.1)) == "0.1")
        #expect(text(.string("")) == "\"\"")
    }

    @Test func nonFiniteDoublesAreWrittenAsNull() {
        // JSON has no NaN/Infinity; writing them as-is would produce unparseable output.
        #expect(text(.double(.nan)) == "null")
        #expect(text(.double(.infinity)) == "null")
        #expect(text(.double(-.infinity)) == "null")
    }

    @Test func containers() {
        #expect(text(.array([])) == "[]")
        #expect(text(.object([:])) == "{}")
        #expect(
            text(.array([.int(1), .string("a"), .null, .bool(true), .bool(false), .double(2.5), .array([]), .object([:])]))
                == #"[1,"a",null,true,false,2.5,[],{}]"#
        )
        #expect(text(.object(["k": .array([.int(1), .object(["x": .null])])])) == #"{"k":[1,{"x":null}]}"#)
        #expect(text(.object(["a\"b\n": .int(1)])) == #"{"a\"b\n":1}"#)
    }

    @Test func objectWithManyMembersHasEachMemberOnce() throws {
        var members: [String: JSONValue] = [:]
        for i in 0..<20 { members["key\(i)"] = .int(Int64(i)) }
        let written = text(.object(members))
        #expect(written.first == "{")
        #expect(written.last == "}")
        #expect(written.filter { $0 == ":" }.count == 20)
        #expect(written.filter { $0 == "," }.count == 19)
        #expect(try JSONParser.parse(written) == .object(members))
    }

    // MARK: String escaping

    @Test func escapesQuotesBackslashesAndNamedControls() {
        #expect(text(.string("a\"b")) == #""a\"b""#)
        #expect(text(.string("a\\b")) == #""a\\b""#)
        #expect(text(.string("\n\r\t\u{08}\u{0C}")) == #""\n\r\t\b\f""#)
        // The solidus is not escaped.
        #expect(text(.string("a/b")) == #""a/b""#)
    }

    @Test func escapesOtherControlCharactersAsLowercaseUnicodeEscapes() {
        #expect(text(.string("\u{01}")) == #""\u0001""#)
        #expect(text(.string("\u{00}")) == #""\u0000""#)
        #expect(text(.string("x\u{1F}y")) == #""x\u001fy""#)
        #expect(text(.string("\u{0B}\u{1B}")) == #""\u000b\u001b""#)
        // DEL is not a control character for JSON.
        #expect(bytes(.string("\u{7F}")) == [0x22, 0x7F, 0x22])
    }

    @Test func everyControlCharacterIsEscaped() throws {
        let all = String(decoding: (0..<0x20).map { UInt8($0) }, as: UTF8.self)
        let written = bytes(.string(all))
        // No raw byte below 0x20 in the output.
        #expect(written.allSatisfy { $0 >= 0x20 })
        #expect(try JSONParser.parse(written) == .string(all))
    }

    @Test func nonASCIIPassesThroughAsUTF8() {
        #expect(bytes(.string("é")) == [0x22, 0xC3, 0xA9, 0x22])
        #expect(bytes(.string("€")) == [0x22, 0xE2, 0x82, 0xAC, 0x22])
        #expect(bytes(.string("😀")) == [0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22])
        #expect(text(.string("héllo 日本 😀")) == "\"héllo 日本 😀\"")
    }

    @Test func mixedEscapingProducesExactBytes() {
        let input = "q\"b\\s/\u{01}\u{1F}\n\r\t\u{08}\u{0C}é😀\u{7F}end"
        let expected = utf8(#""q\"b\\s/\u0001\u001f\n\r\t\b\fé😀"#) + [0x7F] + utf8(#"end""#)
        #expect(bytes(.string(input)) == expected)
    }

    // MARK: Entry points

    @Test func writeAppendsToExistingBytes() {
        var bytes: [UInt8] = [0x41]
        JSONWriter.write(.array([.int(1)]), into: &bytes)
        #expect(bytes == utf8("A[1]"))
    }

    @Test func bufferEntryPoints() {
        #expect(JSONWriter.buffer(.array([.int(1), .string("é")])).readableArray == utf8(#"[1,"é"]"#))

        var buffer = ByteBuffer(string: "prefix:")
        JSONWriter.write(.object(["a": .null]), into: &buffer)
        #expect(buffer.readableArray == utf8(#"prefix:{"a":null}"#))

        var s = ByteBuffer(string: "=")
        JSONWriter.writeString("a\"b\u{01}", into: &s)
        #expect(s.readableArray == utf8(#"="a\"b\u0001""#))
    }

    @Test func bufferWriterKeepsReaderIndex() {
        var buffer = ByteBuffer(string: "xxyy")
        buffer.moveReaderIndex(forwardBy: 2)
        JSONWriter.write(.int(7), into: &buffer)
        #expect(buffer.readerIndex == 2)
        #expect(buffer.readableArray == utf8("yy7"))
    }

    @Test func descriptionIsCompactJSON() {
        let value: JSONValue = .array([.int(1), .string("x"), .null, .object(["k": .bool(true)])])
        #expect(value.description == #"[1,"x",null,{"k":true}]"#)
    }

    // MARK: Round trip

    static let roundTripValues: [JSONValue] = [
        .null,
        .bool(true),
        .int(-42),
        .int(Int64.max),
        .int(Int64.min),
        .double(0.1),
        .double(-1234.5678),
        .double(1e300),
        .double(-2.5e-8),
        .string(""),
        .string("plain"),
        .string("q\"b\\s/\u{00}\u{01}\u{1F}\n\r\t\u{08}\u{0C}\u{7F}é€😀𝄞"),
        .array([]),
        .object([:]),
        .object([
            "topic": .string("room:1"),
            "refs": .array([.string("1"), .int(2), .null]),
            "nested": .object([
                "deeper": .array([.array([.object(["x": .double(0.5), "y": .bool(false)])])]),
                "empty": .object([:]),
                "unicode ключ 😀": .string("значение"),
                "esc\"aped\\key\n": .int(0),
            ]),
            "numbers": .array([.int(0), .int(-1), .double(3.25), .double(-0.001)]),
        ]),
    ]

    @Test(arguments: roundTripValues)
    func roundTripThroughBytes(_ value: JSONValue) throws {
        var bytes: [UInt8] = []
        JSONWriter.write(value, into: &bytes)
        #expect(try JSONParser.parse(bytes) == value)
    }

    @Test(arguments: roundTripValues)
    func roundTripThroughBuffer(_ value: JSONValue) throws {
        #expect(try JSONParser.parse(JSONWriter.buffer(value)) == value)
    }

    @Test func roundTripDeeplyNested() throws {
        var value: JSONValue = .string("leaf")
        for i in 0..<(JSONParser.maxDepth - 1) {
            value = i % 2 == 0 ? .array([value, .int(Int64(i))]) : .object(["k\(i)": value])
        }
        #expect(try JSONParser.parse(JSONWriter.buffer(value)) == value)
    }
}
