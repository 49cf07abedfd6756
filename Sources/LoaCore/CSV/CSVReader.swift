/// One record of a CSV file, or why a record could not be read.
public enum CSVRow: Sendable, Equatable {
    /// `line` is the 1-based physical line where the record starts.
    case record(line: Int, fields: [String])
    /// `fields` and `badField` are set for a record that could be split into fields but holds invalid UTF-8:
    /// every field decoded with U+FFFD for the invalid bytes, and the 0-based index of the first bad one, so the
    /// reader can still say which column was bad and keep the row's phone value for the rejects export.
    case malformed(line: Int, reason: String, fields: [String] = [], badField: Int? = nil)
}

/// A streaming RFC 4180 CSV parser: feed it chunks of any size, it emits records as they complete.
///
/// Quoted fields, `""` escapes, commas and newlines inside quotes, CRLF or LF (or a lone CR) line ends, a
/// UTF-8 byte-order mark at the start, and a last line without a newline are all read. A bad record (invalid
/// UTF-8, longer than `maxRecordBytes`, an unterminated quote at the end) becomes `.malformed` and the parser
/// goes on with the next record, so one bad row never hides the rows after it. Memory is bounded by one record.
/// Chunk boundaries may fall anywhere: inside a UTF-8 character, between CR and LF, between two quotes.
public struct CSVPushParser: Sendable {
    private enum State: Sendable { case fieldStart, unquoted, quoted, quoteInQuoted }

    public let maxRecordBytes: Int
    private var state: State = .fieldStart
    private var field: [UInt8] = []
    private var fields: [String] = []
    private var line = 1
    private var recordLine = 1
    private var recordBytes = 0
    /// The 0-based index of the record's first field that is not valid UTF-8.
    private var invalid: Int?
    private var tooLong = false
    private var lastWasCR = false
    private var bomBytesSeen = 0
    private var atStart = true
    private var recordHasContent = false

    public init(maxRecordBytes: Int = 64 * 1024) {
        self.maxRecordBytes = maxRecordBytes
        field.reserveCapacity(256)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (CSVRow) throws -> Void) rethrows {
        var i = 0
        let n = bytes.count
        // A BOM (EF BB BF) at the very start of the stream, possibly split across chunks.
        while atStart && i < n {
            let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
            if bytes[i] == bom[bomBytesSeen] {
                bomBytesSeen += 1
                i += 1
                if bomBytesSeen == 3 { atStart = false }
            } else {
                // Not a BOM: replay what was taken as data.
                atStart = false
                for b in bom.prefix(bomBytesSeen) { try consume(b, emit) }
            }
        }
        while i < n {
            try consume(bytes[i], emit)
            i += 1
        }
    }

    /// Ends the stream: emits the last record if the file did not end with a newline.
    public mutating func finish(_ emit: (CSVRow) throws -> Void) rethrows {
        if atStart && bomBytesSeen > 0 {
            atStart = false
            for b in [UInt8]([0xEF, 0xBB, 0xBF]).prefix(bomBytesSeen) { try consume(b, emit) }
        }
        if state == .quoted {
            try emit(.malformed(line: recordLine, reason: "unterminated quoted field"))
            resetRecord()
            return
        }
        if recordHasContent || !fields.isEmpty || !field.isEmpty {
            try endRecord(emit)
        }
    }

    @inline(__always)
    private mutating func consume(_ b: UInt8, _ emit: (CSVRow) throws -> Void) rethrows {
        if lastWasCR {
            lastWasCR = false
            if b == 0x0A && state != .quoted { return }  // the LF of a CRLF already ended the record
        }
        recordBytes += 1
        if recordBytes > maxRecordBytes && !tooLong {
            tooLong = true
            field.removeAll(keepingCapacity: true)
            fields.removeAll(keepingCapacity: true)
        }
        switch state {
        case .fieldStart:
            switch b {
            case 0x22: state = .quoted; recordHasContent = true
            case 0x2C: endField(); recordHasContent = true
            case 0x0A: line += 1; try endRecordOrBlank(emit)
            case 0x0D: line += 1; lastWasCR = true; try endRecordOrBlank(emit)
            default: append(b); state = .unquoted; recordHasContent = true
            }
        case .unquoted:
            switch b {
            case 0x2C: endField(); state = .fieldStart
            case 0x0A: line += 1; try endRecord(emit)
            case 0x0D: line += 1; lastWasCR = true; try endRecord(emit)
            default: append(b)
            }
        case .quoted:
            switch b {
            case 0x22: state = .quoteInQuoted
            case 0x0A: line += 1; append(b)
            case 0x0D: append(b)
            default: append(b)
            }
        case .quoteInQuoted:
            switch b {
            case 0x22: append(0x22); state = .quoted  // "" inside quotes
            case 0x2C: endField(); state = .fieldStart
            case 0x0A: line += 1; try endRecord(emit)
            case 0x0D: line += 1; lastWasCR = true; try endRecord(emit)
            default: append(b); state = .unquoted  // lenient: text after the closing quote
            }
        }
    }

    @inline(__always)
    private mutating func append(_ b: UInt8) {
        if !tooLong { field.append(b) }
    }

    private mutating func endField() {
        guard !tooLong else { return }
        if let s = String(validating: field, as: UTF8.self) {
            fields.append(s)
        } else {
            if invalid == nil { invalid = fields.count }
            fields.append(String(decoding: field, as: UTF8.self))
        }
        field.removeAll(keepingCapacity: true)
    }

    /// A newline at the start of a field: a blank line when nothing else was read for this record.
    private mutating func endRecordOrBlank(_ emit: (CSVRow) throws -> Void) rethrows {
        if !recordHasContent && fields.isEmpty {
            resetRecord()
            return
        }
        try endRecord(emit)
    }

    private mutating func endRecord(_ emit: (CSVRow) throws -> Void) rethrows {
        endField()
        let start = recordLine
        if tooLong {
            try emit(.malformed(line: start, reason: "record longer than \(maxRecordBytes) bytes"))
        } else if let invalid {
            try emit(.malformed(line: start, reason: "invalid UTF-8 in field \(invalid + 1)", fields: fields, badField: invalid))
        } else {
            try emit(.record(line: start, fields: fields))
        }
        resetRecord()
    }

    private mutating func resetRecord() {
        fields.removeAll(keepingCapacity: true)
        field.removeAll(keepingCapacity: true)
        state = .fieldStart
        invalid = nil
        tooLong = false
        recordBytes = 0
        recordHasContent = false
        recordLine = line
    }
}

/// A segment's header row: column names, looked up case-insensitively with surrounding spaces ignored.
public struct CSVHeader: Sendable {
    public let names: [String]
    private let index: [String: Int]

    public init(fields: [String]) {
        names = fields
        var idx: [String: Int] = [:]
        for (i, f) in fields.enumerated() {
            let key = CSVHeader.key(f)
            if idx[key] == nil { idx[key] = i }
        }
        index = idx
    }

    public func index(of name: String) -> Int? { index[CSVHeader.key(name)] }

    static func key(_ s: String) -> String {
        var t = Substring(s)
        while let f = t.first, f.isWhitespace { t.removeFirst() }
        while let l = t.last, l.isWhitespace { t.removeLast() }
        return t.lowercased()
    }
}
