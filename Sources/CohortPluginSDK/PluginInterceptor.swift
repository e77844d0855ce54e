import CohortCore
import NIOConcurrencyHelpers
import NIOCore

// Interceptors across the C boundary. A loaded interceptor is a transforming stage: the host
// hands it each message (operation 90 outbound, 91 inbound) as bytes; the plugin runs its stage
// with a stand-in for the rest of the chain that captures what the stage passes on, and answers
// with that message (verdict 0) or, when the stage stopped it, with its report or result
// (verdict 1). The host then passes the transformed message on itself. A loaded stage therefore
// transforms, filters and refuses messages; it does not see the real outcomes of the stages
// below it (the stand-in reports every member `queued`), and membership signals and
// `run(context:)` stay on the host's side of the boundary.

/// An interceptor in a loaded library.
final class LoadedInterceptor: Interceptor, LoadedPluginPart {
    let name: String
    let port: RemotePort
    let library: String
    let pluginID: String

    init(name: String, port: RemotePort, library: String, pluginID: String) {
        self.name = name
        self.port = port
        self.library = library
        self.pluginID = pluginID
    }

    func send(_ message: OutboundMessage, to members: [Member], next: InterceptorNext) async -> SendReport {
        var request = ByteBuffer()
        request.writePlugin(members)
        request.writePlugin(message)
        do {
            var answer = try await port.request(PluginOperation.interceptSend, request)
            switch try answer.readPluginInteger(UInt8.self) {
            case 0:
                var passed = try answer.readPluginOutbound()
                // The host's queue settings are not the plugin's to change.
                passed.queuePolicy = message.queuePolicy
                passed.queueLimit = message.queueLimit
                return await next.send(passed, to: members)
            default:
                return try answer.readPluginReport()
            }
        } catch {
            let why = "interceptor plugin '\(pluginID)' (\(library)) failed: \(error)"
            return SendReport(outcomes: members.map { ($0.id, .rejected(why)) })
        }
    }

    func receive(_ message: InboundMessage, next: InterceptorNext) async -> DeliveryResult {
        var request = ByteBuffer()
        request.writePlugin(message)
        do {
            var answer = try await port.request(PluginOperation.interceptReceive, request)
            switch try answer.readPluginInteger(UInt8.self) {
            case 0:
                var passed = try answer.readPluginInbound()
                // Who sent it is the transport's word, not the plugin's.
                passed.sender = message.sender
                return await next.receive(passed)
            default:
                return try answer.readPluginDeliveryResult()
            }
        } catch {
            return .rejected("interceptor plugin '\(pluginID)' (\(library)) failed: \(error)")
        }
    }
}

/// The plugin side of an interceptor instance.
final class ExportedInterceptor: PluginPortHandler {
    let interceptor: any Interceptor
    let host: RemotePort

    init(_ interceptor: any Interceptor, host: RemotePort) {
        self.interceptor = interceptor
        self.host = host
    }

    func portReleased() {}

    func handle(operation: UInt32, bytes: ByteBuffer, reply: PluginReply?) {
        var bytes = bytes
        do {
            switch operation {
            case PluginOperation.describe:
                var out = ByteBuffer()
                out.writeLengthPrefixedString(interceptor.name)
                reply?.succeed(out)
            case PluginOperation.interceptSend:
                let members = try bytes.readPluginMembers()
                let message = try bytes.readPluginOutbound()
                let interceptor = self.interceptor
                Task {
                    let passed = NIOLockedValueBox<OutboundMessage?>(nil)
                    let chain = InterceptorChain(stages: [interceptor], ends: ChainEnds(
                        transmit: { message, members in
                            passed.withLockedValue { $0 = message }
                            return SendReport(outcomes: members.map { ($0.id, .queued) })
                        },
                        dispatch: { _ in .rejected("not an inbound message") },
                        signal: { _ in }
                    ))
                    let report = await chain.send(message, to: members)
                    var out = ByteBuffer()
                    if let message = passed.withLockedValue({ $0 }) {
                        out.writeInteger(UInt8(0))
                        out.writePlugin(message)
                    } else {
                        out.writeInteger(UInt8(1))
                        out.writePlugin(report)
                    }
                    reply?.succeed(out)
                }
            case PluginOperation.interceptReceive:
                let message = try bytes.readPluginInbound()
                let interceptor = self.interceptor
                Task {
                    let passed = NIOLockedValueBox<InboundMessage?>(nil)
                    let chain = InterceptorChain(stages: [interceptor], ends: ChainEnds(
                        transmit: { _, members in SendReport(outcomes: members.map { ($0.id, .rejected("not an outbound message")) }) },
                        dispatch: { message in
                            passed.withLockedValue { $0 = message }
                            return .processed
                        },
                        signal: { _ in }
                    ))
                    let result = await chain.receive(message)
                    var out = ByteBuffer()
                    if let message = passed.withLockedValue({ $0 }) {
                        out.writeInteger(UInt8(0))
                        out.writePlugin(message)
                    } else {
                        out.writeInteger(UInt8(1))
                        out.writePlugin(result)
                    }
                    reply?.succeed(out)
                }
            default:
                throw CohortError(.internal, "an interceptor plugin got unknown operation \(operation)")
            }
        } catch {
            reply?.fail(error)
        }
    }
}
