// Fuzz target `podlist`: the Kubernetes API's PodList answer
// (Plugins/CohortDiscoveryKubernetes/Sources/KubernetesPodList.swift). The input is the body.
import CohortCore
import CohortDiscoveryKubernetes
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPodList(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    let list: KubernetesPodList
    do {
        list = try KubernetesPodList.decode(bytes)
    } catch let error as CohortError {
        require(error.code == .connectionFailed, "decode threw \(error.code)")
        return 0
    } catch {
        require(false, "decode threw a foreign error \(error)")
        return 0
    }
    for pod in list.items {
        _ = pod.isReady
        for name in ["cluster", "http", ""] {
            if let port = pod.containerPort(named: name) {
                require((1...65535).contains(port), "a port outside 1…65535: \(port)")
                _ = Endpoint(host: pod.status?.podIP ?? "", port: port).description
            }
        }
    }
    return 0
}

// The seeds are the recorded PodLists of the test fixtures (scripts/fuzz copies them).
@_cdecl("LLVMFuzzerInitialize")
public func initializePodList(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Seeds.writeIfAsked([])
    return 0
}
