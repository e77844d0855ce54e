#if Vapor
import CohortVapor
import Testing

/// The pure change detection of the driver.
@Suite("SessionDataChange")
struct SessionDataChangeTests {
    let isPrincipal = SessionDataChange.isVaporAuthenticationKey

    @Test func unchangedDataIsEmpty() {
        let change = SessionDataChange(from: ["a": "1", "_UserSession": "ada"], to: ["a": "1", "_UserSession": "ada"], isPrincipalKey: isPrincipal)
        #expect(change.isEmpty)
        #expect(!change.principalChanged)
        #expect(change.principal == "ada")
    }

    @Test func setsAndRemovalsAreFound() {
        let change = SessionDataChange(from: ["a": "1", "b": "2", "c": "3"], to: ["a": "1", "b": "20", "d": "4"], isPrincipalKey: isPrincipal)
        #expect(change.set == ["b": "20", "d": "4"])
        #expect(change.removed == ["c"])
        #expect(!change.principalChanged)
        #expect(change.principal == nil)
    }

    @Test func loginLogoutAndSwitchChangeThePrincipal() {
        let login = SessionDataChange(from: ["count": "1"], to: ["count": "1", "_UserSession": "ada"], isPrincipalKey: isPrincipal)
        #expect(login.principalChanged && login.principal == "ada")
        let logout = SessionDataChange(from: ["_UserSession": "ada"], to: [:], isPrincipalKey: isPrincipal)
        #expect(logout.principalChanged && logout.principal == nil)
        let change = SessionDataChange(from: ["_UserSession": "ada"], to: ["_UserSession": "grace"], isPrincipalKey: isPrincipal)
        #expect(change.principalChanged && change.principal == "grace")
    }

    @Test func vaporAuthenticationKeys() {
        #expect(SessionDataChange.isVaporAuthenticationKey("_UserSession"))
        #expect(!SessionDataChange.isVaporAuthenticationKey("_Session"))
        #expect(!SessionDataChange.isVaporAuthenticationKey("UserSession"))
        #expect(!SessionDataChange.isVaporAuthenticationKey("count"))
    }
}
#endif
