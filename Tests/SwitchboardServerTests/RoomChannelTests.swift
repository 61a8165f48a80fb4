import Switchboard
import SwitchboardTestSupport
import Testing

@testable import SwitchboardServer

/// The README's test-kit example, on the demo's chat room.
@Suite("RoomChannel through ChannelTest")
struct RoomChannelTests {
    @Test("a member's message reaches the room with its user; others hear of joins; bad messages get an error reply")
    func chat() async throws {
        var socket = PhoenixSocket(hub: Hub(nodeID: "n"))
        socket.channel("room:*", RoomChannel())
        let client = try ChannelTest(socket: socket)
        try await client.join("room:lobby", ["user": "ana"])
        let ref = try await client.push("room:lobby", "new_msg", ["body": "hi"])
        #expect(try await client.expectReply(ref).status == "ok")
        #expect(try await client.expectPush("room:lobby", "new_msg") == ["user": "ana", "body": "hi"])

        let other = try ChannelTest(socket: socket)
        try await other.join("room:lobby", ["user": "bo"])
        #expect(try await client.expectPush("room:lobby", "user_joined") == ["user": "bo"])
        let empty = try await other.push("room:lobby", "new_msg", ["body": ""])
        let reply = try await other.expectReply(empty)
        #expect(reply.status == "error")
        #expect(reply.response == ["reason": "body is required"])
        _ = try await other.leave("room:lobby")
        #expect(try await client.expectPush("room:lobby", "user_left") == ["user": "bo"])
    }
}
