import Hummingbird
import Switchboard
import SwitchboardHummingbird

/// "Broadcast a new to-do from a POST route to everyone on the channel": clients connect to
/// `/todos/socket`; `POST /todos {"title": "…"}` sends the new to-do to all of them.
struct Todo: Codable, Sendable {
    var id: Int
    var title: String
}

struct TodoChannel: PlainChannelHandler {
    func connect(_ request: ConnectRequest, channel: PlainChannel) async throws -> PlainConnectResult<Void> {
        .accept(())
    }
}

func addTodoRoutes(to router: Router<BasicRequestContext>, plainChannels: Router<PlainUpgradeContext>, hub: Hub) {
    let todos = hub.plainChannel("todos")
    plainChannels.plainChannel("/todos/socket", channel: todos, handler: TodoChannel())
    let counter = TodoCounter()
    router.post("/todos") { request, context -> HTTPResponse.Status in
        struct NewTodo: Decodable { let title: String }
        let new = try await request.decode(as: NewTodo.self, context: context)
        try todos.broadcast(Todo(id: await counter.next(), title: new.title))  // returns once handed over
        return .created
    }
}

actor TodoCounter {
    private var value = 0
    func next() -> Int {
        value += 1
        return value
    }
}
