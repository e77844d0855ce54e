import Logging

extension GroupChannel {
    /// Creates a channel whose transport, codec and discovery are resolved by plugin id.
    ///
    /// Built-in plugins are always available; the libraries listed in
    /// ``ClusterConfiguration/plugins`` are loaded first.
    ///
    /// - Parameters:
    ///   - configuration: the node's settings, naming its plugins by id.
    ///   - registry: where plugins are looked up; nil makes a registry of this channel's own,
    ///     holding the built-in plugins.
    ///   - logger: the node's logger.
    ///
    /// - Throws: ``CohortError`` for a bad configuration, a plugin that cannot be loaded, or an
    ///   unknown plugin id.
    public convenience init(configuration: ClusterConfiguration, registry: PluginRegistry? = nil, logger: Logger? = nil) throws {
        try configuration.validate()
        let registry = registry ?? PluginRegistry()
        BuiltInPlugins.register(into: registry)
        for path in configuration.plugins {
            // Compare the located file, so a bare name loaded once serves every channel.
            let file = try PluginLoader.locate(path, searchPath: PluginLoader.searchPath())
            let already = registry.plugins.contains { $0.origin == .file(file) || $0.origin == .file(path) }
            if !already { try PluginLoader.load(file, into: registry) }
        }
        let log = logger ?? Logger(label: "cohort")
        let transportSettings = PluginSettings(values: configuration.transportPluginValues, transport: configuration.wire, logger: log)
        let transport = try registry.factory(configuration.transport, kind: .transport).makeTransport(settings: transportSettings)
        let codecSettings = PluginSettings(transport: configuration.wire, logger: log)
        let codec = try registry.factory(configuration.codec, kind: .codec).makeCodec(settings: codecSettings)
        let receivable = registry.plugins.filter { $0.kind == .codec }.compactMap {
            try? registry.factory($0.id, kind: .codec).makeCodec(settings: codecSettings)
        }
        let discoverySettings = PluginSettings(values: configuration.discoveryPluginValues, transport: configuration.wire, logger: log)
        let discovery = try registry.factory(configuration.discovery, kind: .discovery).makeDiscovery(settings: discoverySettings)
        self.init(configuration: configuration, transport: transport, codec: codec, codecs: receivable, discovery: discovery, logger: log, registry: registry)
        if let configurationError { throw configurationError }
    }
}
