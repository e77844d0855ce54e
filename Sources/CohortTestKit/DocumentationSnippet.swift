import Cohort
import Foundation

/// Keeps code in documents compiling: a test file holds a copy of a document's Swift block
/// between `// snippet: DOCUMENT begin` and `// snippet: DOCUMENT end` (so the compiler checks it
/// and the test runs it), and ``differences(document:testFile:)`` reports where the two differ.
///
/// In the document, the block is the first ```` ```swift ```` fence after a line that names the
/// test file (an HTML comment such as `<!-- Compiled and run by …/DocumentationSnippetTests.swift -->`).
public enum DocumentationSnippet {
    /// The package root, found from a test file's path (`Tests/<Target>/<File>.swift`).
    public static func packageRoot(testFile: String) -> URL {
        URL(fileURLWithPath: testFile).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The Swift block that follows the first line naming `testFileName` in a document.
    ///
    /// - Throws: ``CohortError/Code/notFound`` when the document has no such block.
    public static func documentBlock(_ document: URL, naming testFileName: String) throws -> [Substring] {
        let text = try String(contentsOf: document, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let mention = lines.firstIndex(where: { $0.contains(testFileName) }),
            let start = lines[mention...].firstIndex(where: { $0 == "```swift" }),
            let end = lines[(start + 1)...].firstIndex(where: { $0 == "```" })
        else { throw CohortError(.notFound, "\(document.lastPathComponent) has no Swift block after a line naming \(testFileName)") }
        return Array(lines[(start + 1)..<end])
    }

    /// A test file's region for a document.
    ///
    /// - Throws: ``CohortError/Code/notFound`` when the file has no such region.
    public static func testRegion(_ testFile: String, document: String) throws -> [Substring] {
        let text = try String(contentsOf: URL(fileURLWithPath: testFile), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let begin = lines.firstIndex(of: "// snippet: \(document) begin"[...]),
            let end = lines.firstIndex(of: "// snippet: \(document) end"[...])
        else { throw CohortError(.notFound, "no snippet region for \(document) in \(testFile)") }
        return Array(lines[(begin + 1)..<end])
    }

    /// What differs between a document's block and the test file's copy: empty when they are
    /// the same, else the first differing line (or the line counts).
    ///
    /// - Parameters:
    ///   - document: the document's path from the package root.
    ///   - testFile: the test file (`#filePath`).
    public static func differences(document: String, testFile: String = #filePath) throws -> [String] {
        let root = packageRoot(testFile: testFile)
        let name = URL(fileURLWithPath: testFile).lastPathComponent
        let inDocument = try documentBlock(root.appendingPathComponent(document), naming: name)
        let inTest = try testRegion(testFile, document: document)
        if inDocument.isEmpty { return ["\(document): the block is empty"] }
        for (line, (documented, tested)) in zip(inDocument, inTest).enumerated() where documented != tested {
            return ["\(document), line \(line + 1) of the block differs:\n  document: \(documented)\n  test:     \(tested)"]
        }
        if inDocument.count != inTest.count {
            return ["\(document): \(inDocument.count) lines in the document, \(inTest.count) in the test"]
        }
        return []
    }
}
