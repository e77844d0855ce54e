extension Bool {
    /// A yes/no setting written as text — in an environment variable, a plugin's string settings,
    /// a configuration file: `true`, `yes`, `on`, `1` or `false`, `no`, `off`, `0`, in any case.
    ///
    /// Returns nil for anything else, so the caller can name the setting in its error.
    public init?(settingText text: String) {
        switch text.lowercased() {
        case "true", "yes", "on", "1": self = true
        case "false", "no", "off", "0": self = false
        default: return nil
        }
    }
}
