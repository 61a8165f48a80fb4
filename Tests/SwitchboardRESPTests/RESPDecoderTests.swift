import NIOCore
import SwitchboardTestSupport
import Testing

@testable import SwitchboardRESP

@Suite("RESP3 decoder")
struct RESPDecoderTests {
    static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
    static func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    /// One script per RESP3 type (and the RESP2 nulls), with the value it must decode to.
    static let scripts: [(String, RESPValue)] = [
        ("+OK\r\n", .simpleString("OK")),
        ("+\r\n", .simpleString("")),
        ("-ERR unknown command 'x'\r\n", .simpleError("ERR unknown command 'x'")),
        (":0\r\n", .integer(0)),
        (":-42\r\n", .integer(-42)),
        (":+7\r\n", .integer(7)),
        (":9223372036854775807\r\n", .integer(.max)),
        (":-9223372036854775808\r\n", .integer(.min)),
        ("$5\r\nhello\r\n", bulk("hello")),
        ("$0\r\n\r\n", bulk("")),
        ("$4\r\na\r\nb\r\n", bulk("a\r\nb")),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("_\r\n", .null),
        ("#t\r\n", .boolean(true)),
        ("#f\r\n", .boolean(false)),
        (",1.23\r\n", .double(1.23)),
        (",10\r\n", .double(10)),
        (",-1.5e3\r\n", .double(-1500)),
        (",inf\r\n", .double(.infinity)),
        (",-inf\r\n", .double(-.infinity)),
        ("(3492890328409238509324850943850943825024385\r\n", .bigNumber("3492890328409238509324850943850943825024385")),
        ("(-12\r\n", .bigNumber("-12")),
        ("!21\r\nSYNTAX invalid syntax\r\n", .bulkError("SYNTAX invalid syntax")),
        ("=15\r\ntxt:Some string\r\n", .verbatimString(format: "txt", text: "Some string")),
        ("*0\r\n", .array([])),
        ("*3\r\n:1\r\n$1\r\nx\r\n_\r\n", .array([.integer(1), bulk("x"), .null])),
        (
            "%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#f\r\n",
            .map([.init(key: .simpleString("first"), value: .integer(1)), .init(key: bulk("second"), value: .boolean(false))])
        ),
        ("~3\r\n+a\r\n+b\r\n:3\r\n", .set([.simpleString("a"), .simpleString("b"), .integer(3)])),
        (">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", .push([bulk("message"), bulk("ch"), bulk("hi")])),
        // An attribute describes the value after it and is skipped, also inside an aggregate, where it is not counted.
        ("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*2\r\n:2039123\r\n:9543892\r\n", .array([.integer(2_039_123), .integer(9_543_892)])),
        ("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", .array([.integer(1), .integer(2)])),
        // Nested aggregates of every kind.
        (
            "*2\r\n%1\r\n+k\r\n~2\r\n*1\r\n:1\r\n_\r\n>1\r\n*0\r\n",
            .array([
                .map([.init(key: .simpleString("k"), value: .set([.array([.integer(1)]), .null]))]),
                .push([.array([])]),
            ])
        ),
    ]

    @Test("every RESP3 type decodes from its byte script")
    func everyType() throws {
        let decoder = RESPDecoder()
        for (script, expected) in Self.scripts {
            var input = Self.buffer(script)
            let value = try decoder.decode(&input)
            #expect(value == expected, "script \(script.debugDescription)")
            #expect(input.readableBytes == 0, "script \(script.debugDescription) left bytes")
        }
    }

    @Test("NaN decodes as a NaN double")
    func nan() throws {
        var input = Self.buffer(",nan\r\n")
        guard case .double(let d) = try RESPDecoder().decode(&input) else {
            Issue.record("not a double")
            return
        }
        #expect(d.isNaN)
    }

    @Test("a frame split at every byte boundary decodes only once complete, and consumes nothing before")
    func splitAtEveryBoundary() throws {
        let decoder = RESPDecoder()
        for (script, expected) in Self.scripts {
            let bytes = Array(script.utf8)
            for split in 0..<bytes.count {
                var input = ByteBuffer(bytes: bytes[..<split])
                #expect(try decoder.decode(&input) == nil, "script \(script.debugDescription) cut at \(split)")
                #expect(input.readableBytes == split)
                input.writeBytes(bytes[split...])
                #expect(try decoder.decode(&input) == expected, "script \(script.debugDescription) completed at \(split)")
                #expect(input.readableBytes == 0)
            }
        }
    }

    @Test("byte-by-byte arrival of many pipelined values yields them all, in order")
    func byteByByte() throws {
        let decoder = RESPDecoder()
        let all = Self.scripts.map(\.0).joined()
        var input = ByteBuffer()
        var values: [RESPValue] = []
        for byte in all.utf8 {
            input.writeInteger(byte)
            values += try decoder.decodeAll(&input)
        }
        #expect(values == Self.scripts.map(\.1))
        #expect(input.readableBytes == 0)
    }

    @Test("bulk strings are binary safe")
    func binary() throws {
        var input = ByteBuffer(bytes: [UInt8(ascii: "$"), UInt8(ascii: "4"), 13, 10, 0, 13, 255, 10, 13, 10])
        #expect(try RESPDecoder().decode(&input) == .bulkString(ByteBuffer(bytes: [0, 13, 255, 10])))
    }

    static let invalid: [String] = [
        "?\r\n",  // unknown type
        "+OK\rX",  // CR without LF
        "+O\nK\r\n",  // LF without CR
        ":12a\r\n",  // bad integer
        ":\r\n",  // empty integer
        ":99999999999999999999\r\n",  // overflow
        "$-2\r\n",  // negative length
        "$abc\r\n",  // bad length
        "$3\r\nabcd\r\n",  // string longer than declared
        "%-1\r\n",  // null map does not exist
        "~-1\r\n",
        "#x\r\n",  // bad boolean
        "#\r\n",
        "_x\r\n",  // null with content
        ",1.2.3x\r\n",  // bad double
        ",0x1p3\r\n",  // hex floats are not RESP
        ",infinity\r\n",
        "(12a\r\n",  // bad big number
        "(\r\n",
        "=3\r\ntxt\r\n",  // verbatim without format separator
        "=5\r\ntxt-x\r\n",
        "$?\r\n",  // streamed strings are not supported
        "*?\r\n",
        "*1\r\n?\r\n",  // invalid inside an aggregate
    ]

    @Test("invalid input fails with a decode error, never a crash")
    func invalidInput() {
        let decoder = RESPDecoder()
        for script in Self.invalid {
            var input = Self.buffer(script)
            #expect(throws: RESPDecodeError.self, "script \(script.debugDescription)") {
                _ = try decoder.decode(&input)
            }
        }
    }

    @Test("limits: depth, string length, element count and line length are bounded")
    func limits() {
        var limits = RESPDecoder.Limits()
        limits.maxDepth = 8
        limits.maxBulkLength = 16
        limits.maxAggregateCount = 4
        limits.maxLineLength = 32
        let decoder = RESPDecoder(limits: limits)
        var deep = Self.buffer(String(repeating: "*1\r\n", count: 9) + ":1\r\n")
        #expect(throws: RESPDecodeError.self) { _ = try decoder.decode(&deep) }
        var shallow = Self.buffer(String(repeating: "*1\r\n", count: 8) + ":1\r\n")
        #expect((try? decoder.decode(&shallow)) != nil)
        // Over-long declared sizes fail at once, before any of the data has arrived.
        var big = Self.buffer("$17\r\n")
        #expect(throws: RESPDecodeError.self) { _ = try decoder.decode(&big) }
        var many = Self.buffer("*5\r\n")
        #expect(throws: RESPDecodeError.self) { _ = try decoder.decode(&many) }
        var hugeCount = Self.buffer("*999999999999999999999\r\n")
        #expect(throws: RESPDecodeError.self) { _ = try decoder.decode(&hugeCount) }
        // A line that never ends fails once it is longer than the limit, instead of buffering forever.
        var endless = Self.buffer("+" + String(repeating: "a", count: 40))
        #expect(throws: RESPDecodeError.self) { _ = try decoder.decode(&endless) }
        var short = Self.buffer("+" + String(repeating: "a", count: 20))
        #expect((try? decoder.decode(&short)) == .some(nil))
    }

    @Test("a declared count larger than what arrives is just incomplete (no preallocation)")
    func lyingCount() throws {
        var input = Self.buffer("*16777216\r\n:1\r\n")
        #expect(try RESPDecoder().decode(&input) == nil)
    }

    @Test("random bytes never crash the decoder")
    func randomBytes() {
        var generator = SplitMix(seed: 7)
        let alphabet = Array("+-:$*%~>|_#,(!=\r\n0123456789-?atfinx".utf8)
        var outcomes = (values: 0, errors: 0, incomplete: 0)
        for _ in 0..<5000 {
            let length = Int(generator.next() % 24)
            var input = ByteBuffer(bytes: (0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
            do {
                if try RESPDecoder().decode(&input) == nil { outcomes.incomplete += 1 } else { outcomes.values += 1 }
            } catch {
                outcomes.errors += 1
            }
        }
        #expect(outcomes.errors > 0)
        #expect(outcomes.incomplete > 0)
        #expect(outcomes.values + outcomes.errors + outcomes.incomplete == 5000)
    }
}

/// A small deterministic generator, so a failure reproduces.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
