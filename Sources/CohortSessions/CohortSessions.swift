// The session managers; see SessionManager.swift.
