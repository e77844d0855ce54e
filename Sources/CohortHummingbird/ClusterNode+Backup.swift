extension ClusterNode {
    static func makeBackupManager(_ channel: GroupChannel, _ configuration: SessionManagerConfiguration) throws -> SessionManager {
        throw CohortError(.badConfiguration, "the backup session manager is not available in this build yet; use --manager delta")
    }
}
