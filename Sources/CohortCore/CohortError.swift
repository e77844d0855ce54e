/// The one public error type of Cohort.
///
/// Every error carries a ``code`` that programs can match on, a ``message`` that says what went
/// wrong and what to do about it, an optional underlying ``cause``, and the source location that
/// raised it. Equality compares codes only.
///
/// ```swift
/// do { try await channel.send(message) }
/// catch let error as CohortError where error.code == .frameTooLarge { … }
/// ```
public struct CohortError: Error, Sendable, CustomStringConvertible, Equatable {
    /// An extensible error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }

        /// Configuration is invalid (unknown key, bad value, malformed address).
        public static let badConfiguration = Code("badConfiguration")
        /// A frame or message is larger than the configured cap.
        public static let frameTooLarge = Code("frameTooLarge")
        /// Bytes on the wire are not a valid Cohort frame.
        public static let malformedFrame = Code("malformedFrame")
        /// A frame speaks a protocol version this node does not.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// The message type id is not registered on this node.
        public static let unknownMessageType = Code("unknownMessageType")
        /// The frame was written by a codec this node does not have.
        public static let unknownCodec = Code("unknownCodec")
        /// Encoding or decoding a message failed.
        public static let codecFailure = Code("codecFailure")
        /// A plugin id is not registered or could not be loaded.
        public static let pluginNotFound = Code("pluginNotFound")
        /// A plugin library could not be loaded (wrong ABI, missing entry point, …).
        public static let pluginLoadFailed = Code("pluginLoadFailed")
        /// Two plugins registered the same id.
        public static let duplicatePlugin = Code("duplicatePlugin")
        /// The channel is not running (not started yet, or stopped).
        public static let notRunning = Code("notRunning")
        /// The member is not (or no longer) part of the view.
        public static let unknownMember = Code("unknownMember")
        /// Connecting to or writing to a member failed.
        public static let connectionFailed = Code("connectionFailed")
        /// No answer arrived in time.
        public static let timeout = Code("timeout")
        /// The receiver's handler threw (Tribes' FAIL_ACK).
        public static let remoteHandlerFailed = Code("remoteHandlerFailed")
        /// A bounded queue is full and the policy is to fail fast.
        public static let queueFull = Code("queueFull")
        /// The address is already in use.
        public static let addressInUse = Code("addressInUse")
        /// Some members did not acknowledge a send; see the attached ``SendReport``.
        public static let partialFailure = Code("partialFailure")
        /// Not enough members for the requested operation.
        public static let noQuorum = Code("noQuorum")
        /// A key or entry does not exist.
        public static let notFound = Code("notFound")
        /// The key already exists.
        public static let duplicate = Code("duplicate")
        /// A compressed message would decompress to more than the receiver's cap (a decompression
        /// bomb), or its compressed bytes are corrupt.
        public static let decompressionRefused = Code("decompressionRefused")
        /// A fragmented message could not be reassembled (fragments missing, expired, or beyond
        /// the receiver's memory bounds).
        public static let incompleteMessage = Code("incompleteMessage")
        /// A generic internal failure; the message says more.
        public static let `internal` = Code("internal")
        /// A peer did not prove it holds the cluster's credentials (key or certificate), or
        /// this node is configured to refuse to run without them.
        public static let unauthenticated = Code("unauthenticated")

        /// A code defined outside Cohort (for plugins): use a dotted, namespaced name.
        public static func custom(_ name: String) -> Code { Code(name) }

        public var description: String { raw }
    }

    /// What kind of error this is.
    public let code: Code
    /// What went wrong and what to do about it.
    public let message: String
    /// The underlying error, if any.
    public let cause: (any Error)?
    /// Where the error was raised.
    public let location: String

    /// Creates an error.
    public init(
        _ code: Code,
        _ message: String,
        cause: (any Error)? = nil,
        fileID: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.cause = cause
        self.location = "\(fileID):\(line)"
    }

    public var description: String {
        if let cause {
            return "\(message) [\(code)] (cause: \(cause))"
        }
        return "\(message) [\(code)]"
    }

    public static func == (lhs: CohortError, rhs: CohortError) -> Bool { lhs.code == rhs.code }
}
