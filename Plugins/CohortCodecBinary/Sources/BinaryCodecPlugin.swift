import CohortCore

/// The factory that registers ``BinaryCodec`` as the plugin `codec.binary`.
public struct BinaryCodecPlugin: PluginFactory {
    /// Creates the factory.
    public init() {}
    /// `"codec.binary"`.
    public var id: String { "codec.binary" }
    /// ``CohortCore/PluginKind/codec``.
    public var kind: PluginKind { .codec }
    /// The plugin's version.
    public var version: String { "1.0.0" }
    /// A one-line description for `cohort plugins`.
    public var summary: String { "Compact self-describing binary format for any Codable value (the default codec)" }
    /// Makes a ``BinaryCodec``; it takes no settings.
    public func makeCodec(settings: PluginSettings) throws -> any MessageCodec { BinaryCodec() }
}
