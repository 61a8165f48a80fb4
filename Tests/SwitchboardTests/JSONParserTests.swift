import NIOCore
import Testing

@testable import Switchboard

@Suite("JSONParser")
struct JSONParserTests {
    // MARK: Values of every type

    @Test func literals() throws {
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse("true") == .bool(true))
        #expect(try JSONParser.parse("false") == .bool(false))
    }

    @Test func surroundingWhitespaceIsAllowed() throws {
        #expect(try JSONParser.parse(" \t\r\n 42 \n\t ") == .int(42))
        #expect(try JSONParser.parse("\n[ 1 , 2 ]\r\n") == .array([.int(1), .int(2)]))
    }

    @Test(arguments: [
        ("0", Int64(0)),
        ("-0", 0),
        ("7", 7),
        ("-17", -17),
        ("1234567890", 1_234_567_890),
        ("9223372036854775807", Int64.max),
        ("-9223372036854775808", Int64.min),
    ])
    func integersStayInt(_ text: String, _ expected: Int64) throws {
        let value = try JSONParser.parse(text)
        #expect(value == .int(expected))
    }

    @Test(arguments: [
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1.0", 1.0),
        ("0.1", 0.1),
        ("1e2", 100.0),
        ("1E2", 100.0),
        ("1e+2", 100.0),
        ("25e-2", 0.25),
        ("-1.5E3", -1500.0),
        ("0e0", 0.0),
        ("1.7976931348623157e308", Double.greatestFiniteMagnitude),
    ])
    func fractionalAndExponentNumbersAreDouble(_ text: String, _ expected: Double) throws {
        let value = try JSONParser.parse(text)
        guard case .double(let d) = value else {
            Issue.record("\(text) parsed as \(value), expected .double")
            return
        }
        #expect(d == expected)
    }

    @Test func integerBeyondInt64FallsBackToDouble() throws {
        #expect(try JSONParser.parse("9223372036854775808") == .double(9_223_372_036_854_775_808.0))
        #expect(try JSONParser.parse("-123456789012345678901234567890") == .double(-123456789012345678901234567890.0))
    }

    @Test func intAndDoubleAreDistinct() throws {
        #expect(try JSONParser.parse("1") != JSONParser.parse("1.0"))
        #expect(try JSONParser.parse("[1,1.0]") == .array([.int(1), .double(1.0)]))
    }

    @Test func strings() throws {
        #expect(try JSONParser.parse("\"\"") == .string(""))
        #expect(try JSONParser.parse("\"hello world\"") == .string("hello world"))
        // Raw (unescaped) UTF-8 passes through.
        #expect(try JSONParser.parse("\"héllo 😀 日本\"") == .string("héllo 😀 日本"))
        // DEL (0x7F) is not a control character in JSON.
        #expect(try JSONParser.parse("\"a\u{7F}b\"") == .string("a\u{7F}b"))
    }

    @Test func simpleEscapes() throws {
        let text = #""q\"b\\s\/b\bf\fn\nr\rt\t""#
        #expect(try JSONParser.parse(text) == .string("q\"b\\s/b\u{08}f\u{0C}n\nr\rt\t"))
    }

    @Test func escapeAfterRawTextAndRawTextAfterEscape() throws {
        // Exercises the switch from the fast path to the escape path and back.
        #expect(try JSONParser.parse(#""héllo\nwörld ✓""#) == .string("héllo\nwörld ✓"))
    }

    @Test(arguments: [
        (#""\u0041""#, "A"),
        (#""\u00e9""#, "é"),
        (#""\u00E9""#, "é"),
        (#""\u20AC""#, "€"),
        (#""\u0000""#, "\u{0}"),
        (#""\u001f""#, "\u{1F}"),
        (#""x\u0041y""#, "xAy"),
        (#""\uD83D\uDE00""#, "😀"),
        (#""\ud83d\ude00""#, "😀"),
        (#""\uD834\uDD1E""#, "𝄞"),
        (#""\uDBFF\uDFFF""#, "\u{10FFFF}"),
        (#""a\uD83D\uDE00b""#, "a😀b"),
    ])
    func unicodeEscapes(_ text: String, _ expected: String) throws {
        #expect(try JSONParser.parse(text) == .string(expected))
    }

    @Test func arrays() throws {
        #expect(try JSONParser.parse("[]") == .array([]))
        #expect(try JSONParser.parse("[ ]") == .array([]))
        #expect(
            try JSONParser.parse(#"[1,"a",null,true,false,2.5,[],{},[3]]"#)
                == .array([.int(1), .string("a"), .null, .bool(true), .bool(false), .double(2.5), .array([]), .object([:]), .array([.int(3)])])
        )
    }

    @Test func objects() throws {
        #expect(try JSONParser.parse("{}") == .object([:]))
        #expect(try JSONParser.parse("{ }") == .object([:]))
        let value = try JSONParser.parse(#" { "a" : 1 , "b" : [ true , null ] , "c" : { "d" : "e" } , "" : 0.5 } "#)
        #expect(
            value
                == .object([
                    "a": .int(1),
                    "b": .array([.bool(true), .null]),
                    "c": .object(["d": .string("e")]),
                    "": .double(0.5),
                ])
        )
    }

    @Test func escapedMemberNames() throws {
        #expect(try JSONParser.parse(#"{"a\"b\u00e9":1}"#) == .object(["a\"bé": .int(1)]))
    }

    // MARK: Input forms

    @Test func parsesOnlyTheReadableBytesOfABuffer() throws {
        var buffer = ByteBuffer(string: "garbage[1,2]")
        buffer.moveReaderIndex(forwardBy: 7)
        #expect(try JSONParser.parse(buffer) == .array([.int(1), .int(2)]))
    }

    @Test func parsesByteArraysAndNonContiguousCollections() throws {
        let bytes = utf8(#"{"k":[1,"v"]}"#)
        let expected: JSONValue = .object(["k": .array([.int(1), .string("v")])])
        #expect(try JSONParser.parse(bytes) == expected)
        // A lazy collection has no contiguous storage: exercises the copying path.
        #expect(try JSONParser.parse(bytes.lazy.map { $0 }) == expected)
        #expect(try JSONParser.parse(bytes[...]) == expected)
    }

    // MARK: Invalid input

    @Test(arguments: [
        // empty
        "", " ", "\n\t",
        // trailing garbage
        "1 2", "{}x", "[1]]", "nullx", "true false", "\"a\"\"b\"", "01", "-01", "00", "0x10",
        // unterminated strings
        "\"abc", "\"", "\"abc\\", "\"abc\\\"", "\"ab\\n",
        // bad escapes
        #""\x""#, #""\a""#, #""\U0041""#, #""\u12G4""#, #""\u12""#, #""\u""#, #""\'""#,
        // lone / broken surrogates
        #""\uD800""#, #""\uDBFF""#, #""\uDC00""#, #""\uDFFF""#, #""\uD800x""#, #""\uD800\u0041""#,
        #""\uD800\uD800""#, #""\uDE00\uD83D""#, #""\uD800\n""#,
        // control characters in strings (fast path and after an escape)
        "\"a\u{01}b\"", "\"a\nb\"", "\"a\tb\"", "\"\u{00}\"", "\"\u{1F}\"", "\"\\n\u{0A}\"",
        // numbers
        "1.", "-", "+1", ".5", "1.e5", "1e", "1e+", "1E-", "-a", "--1", "1.5.5", "Infinity", "NaN", "-Infinity",
        // literals
        "tru", "nul", "fals", "True", "NULL", "nulL",
        // arrays and objects
        "[", "]", "[1,", "[1,]", "[,1]", "[1 2]", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}",
        "{1:2}", "{a:1}", "{'a':1}", "{\"a\":1 \"b\":2}", "[1}", "{\"a\":1]",
        // other
        "'a'", "undefined", "/* c */ 1",
    ])
    func rejectsInvalid(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8InStrings() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22] as [UInt8]) }
        // Invalid UTF-8 after an escape (slow path).
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0x5C, 0x6E, 0xC3, 0x22] as [UInt8]) }
        // A truncated 3-byte sequence.
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xE2, 0x82, 0x22] as [UInt8]) }
    }

    @Test func errorOffsets() {
        #expect(throwingOffset("01") == 1)
        #expect(throwingOffset("[1,2") == 4)
        #expect(throwingOffset("  ") == 2)
        #expect(throwingOffset("{\"a\":1} x") == 8)
        #expect(throwingOffset("[1,]") == 3)
    }

    func throwingOffset(_ text: String) -> Int? {
        do {
            _ = try JSONParser.parse(text)
            return nil
        } catch {
            return error.offset
        }
    }

    // MARK: Nesting limit

    @Test func acceptsNestingUpToMaxDepth() throws {
        let depth = JSONParser.maxDepth
        let arrays = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        var value = try JSONParser.parse(arrays)
        var levels = 0
        while case .array(let elements) = value {
            levels += 1
            guard let first = elements.first else { break }
            #expect(elements.count == 1)
            value = first
        }
        #expect(levels == depth)

        let objects = String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
        #expect(throws: Never.self) { try JSONParser.parse(objects) }
    }

    @Test func rejectsNestingDeeperThanMaxDepth() {
        let depth = JSONParser.maxDepth + 1
        let arrays = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(arrays) }

        let objects = String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(objects) }

        let mixed = String(repeating: #"[{"a":"#, count: depth / 2 + 1) + "1" + String(repeating: "}]", count: depth / 2 + 1)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(mixed) }

        // Hostile input far past the limit must be rejected, not crash.
        let huge = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(huge) }
    }
}
