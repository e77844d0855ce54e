import Foundation

/// A parser for the block-style YAML subset the Kubernetes bundle is written in: documents split
/// by `---`, mappings, sequences (`- item`, `- key: value`), plain and quoted scalars, flow
/// sequences of scalars (`[a, b]`) and `#` comments. Anything else is a parse error, so the
/// bundle stays in this subset.
indirect enum YAMLNode: Equatable, CustomStringConvertible {
    case scalar(String)
    case list([YAMLNode])
    case map([(String, YAMLNode)])

    static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool { lhs.description == rhs.description }

    var description: String {
        switch self {
        case .scalar(let text): return text
        case .list(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .map(let entries): return "{" + entries.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
        }
    }

    /// The value of a key of a mapping.
    subscript(key: String) -> YAMLNode? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.0 == key }?.1
    }

    /// An item of a sequence.
    subscript(index: Int) -> YAMLNode? {
        guard case .list(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// A path of keys and indices: `node["spec", "template", "spec", "containers", 0]`.
    subscript(path: any YAMLPathComponent...) -> YAMLNode? {
        var node: YAMLNode? = self
        for component in path { node = node.flatMap { component.step(in: $0) } }
        return node
    }

    var string: String? { if case .scalar(let text) = self { return text } else { return nil } }
    var int: Int? { string.flatMap { Int($0) } }
    var items: [YAMLNode] { if case .list(let items) = self { return items } else { return [] } }
    var keys: [String] { if case .map(let entries) = self { return entries.map(\.0) } else { return [] } }
    /// The strings of a sequence of scalars.
    var strings: [String] { items.compactMap(\.string) }
}

protocol YAMLPathComponent {
    func step(in node: YAMLNode) -> YAMLNode?
}

extension String: YAMLPathComponent {
    func step(in node: YAMLNode) -> YAMLNode? { node[self] }
}

extension Int: YAMLPathComponent {
    func step(in node: YAMLNode) -> YAMLNode? { node[self] }
}

enum MiniYAML {
    struct ParseError: Error, CustomStringConvertible {
        var line: Int
        var reason: String
        var description: String { "line \(line): \(reason)" }
    }

    private struct Line {
        var number: Int
        var indent: Int
        var text: String
    }

    /// Parses every document of a file (empty documents are dropped).
    static func documents(_ text: String) throws -> [YAMLNode] {
        var documents: [[Line]] = [[]]
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            if line.trimmingCharacters(in: .whitespaces) == "---" {
                documents.append([])
                continue
            }
            let content = stripComment(line)
            guard !content.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            guard !content.contains("\t") else { throw ParseError(line: offset + 1, reason: "tab in indentation") }
            let indent = content.prefix { $0 == " " }.count
            documents[documents.count - 1].append(Line(number: offset + 1, indent: indent, text: String(content.dropFirst(indent))))
        }
        return try documents.filter { !$0.isEmpty }.map { lines in
            var index = 0
            let node = try block(lines, &index, indent: lines[0].indent)
            guard index == lines.count else { throw ParseError(line: lines[index].number, reason: "unexpected indentation") }
            return node
        }
    }

    private static func block(_ lines: [Line], _ index: inout Int, indent: Int) throws -> YAMLNode {
        let first = lines[index]
        guard first.indent == indent else { throw ParseError(line: first.number, reason: "expected indentation \(indent)") }
        if first.text == "-" || first.text.hasPrefix("- ") {
            var items: [YAMLNode] = []
            while index < lines.count, lines[index].indent == indent, lines[index].text == "-" || lines[index].text.hasPrefix("- ") {
                let line = lines[index]
                let rest = line.text == "-" ? "" : String(line.text.dropFirst(2)).trimmingCharacters(in: .whitespaces)
                if rest.isEmpty {
                    index += 1
                    guard index < lines.count, lines[index].indent > indent else { throw ParseError(line: line.number, reason: "empty list item") }
                    items.append(try block(lines, &index, indent: lines[index].indent))
                } else if splitKey(rest) != nil {
                    // `- key: value` starts a mapping whose other keys are indented like `key`.
                    var replaced = lines
                    let itemIndent = indent + 2 + (line.text.dropFirst(2).prefix { $0 == " " }.count)
                    replaced[index] = Line(number: line.number, indent: itemIndent, text: rest)
                    items.append(try block(replaced, &index, indent: itemIndent))
                } else {
                    items.append(try scalar(rest, line: line.number))
                    index += 1
                }
            }
            return .list(items)
        }
        var entries: [(String, YAMLNode)] = []
        while index < lines.count, lines[index].indent == indent {
            let line = lines[index]
            guard let (key, value) = splitKey(line.text) else { throw ParseError(line: line.number, reason: "expected 'key: value' in '\(line.text)'") }
            guard !entries.contains(where: { $0.0 == key }) else { throw ParseError(line: line.number, reason: "duplicate key '\(key)'") }
            index += 1
            if !value.isEmpty {
                entries.append((key, try scalar(value, line: line.number)))
            } else if index < lines.count, lines[index].indent > indent {
                entries.append((key, try block(lines, &index, indent: lines[index].indent)))
            } else if index < lines.count, lines[index].indent == indent, lines[index].text.hasPrefix("- ") {
                entries.append((key, try block(lines, &index, indent: indent)))
            } else {
                entries.append((key, .scalar("")))
            }
        }
        return .map(entries)
    }

    /// `key: value` → (key, value); nil when the text is not a mapping entry.
    private static func splitKey(_ text: String) -> (String, String)? {
        if text.hasPrefix("\"") || text.hasPrefix("'") || text.hasPrefix("[") { return nil }
        if let range = text.range(of: ": ") {
            return (String(text[..<range.lowerBound]), String(text[range.upperBound...]).trimmingCharacters(in: .whitespaces))
        }
        if text.hasSuffix(":") { return (String(text.dropLast()), "") }
        return nil
    }

    private static func scalar(_ text: String, line: Int) throws -> YAMLNode {
        if text.hasPrefix("[") {
            guard text.hasSuffix("]") else { throw ParseError(line: line, reason: "unterminated flow sequence") }
            let inner = text.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
            if inner.isEmpty { return .list([]) }
            return .list(try inner.split(separator: ",").map { try scalar(String($0).trimmingCharacters(in: .whitespaces), line: line) })
        }
        if text.hasPrefix("{") || text.hasPrefix("|") || text.hasPrefix(">") || text.hasPrefix("&") || text.hasPrefix("*") {
            throw ParseError(line: line, reason: "'\(text)' is outside the supported YAML subset")
        }
        for quote in ["\"", "'"] where text.hasPrefix(quote) {
            guard text.count >= 2, text.hasSuffix(quote) else { throw ParseError(line: line, reason: "unterminated quote") }
            return .scalar(String(text.dropFirst().dropLast()))
        }
        return .scalar(text)
    }

    /// The line without a `#` comment (a `#` at the start or after a space, outside quotes).
    private static func stripComment(_ line: String) -> String {
        var result = ""
        var quote: Character?
        var previous: Character = " "
        for character in line {
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "#" && previous == " " {
                break
            }
            result.append(character)
            previous = character
        }
        while result.last == " " { result.removeLast() }
        return result
    }
}
