// TEMPORARY until the Text/ module lands.
public enum SMSEncoding: String, Sendable, Codable { case gsm7, ucs2 }
public enum EncodingPolicy: String, Sendable, Codable { case auto, unicode, ascii }
public enum Carrier: String, Sendable, Codable, CaseIterable { case viettel, mobifone, vinaphone, vietnamobile, gmobile, itelecom, reddi, unknown }
public struct PhoneNumber: Hashable, Sendable { public let e164: String; public var defaultCarrier: Carrier = .unknown }
public struct PhoneRejection: Error, Sendable, Equatable { public let code: String; public let message: String }
public enum PhoneNormalizer { public static func normalize(_ raw: String, allowedCountryCodes: Set<String> = []) -> Result<PhoneNumber, PhoneRejection> { .success(PhoneNumber(e164: raw)) } }
public struct SegmentInfo: Sendable, Equatable { public var encoding: SMSEncoding; public var units: Int; public var segments: Int; public var charactersPerSegment: Int }
public enum SMSText { public static func prepare(_ text: String, policy: EncodingPolicy) -> (text: String, info: SegmentInfo) { (text, SegmentInfo(encoding: .gsm7, units: 1, segments: 1, charactersPerSegment: 160)) } }
public struct Placeholder: Sendable, Equatable { public var name: String; public var defaultValue: String? }
public struct TemplateError: Error, Sendable, Equatable { public var message: String; public var line: Int; public var column: Int }
public struct Template: Sendable { public init(name: String, source: String) throws(TemplateError) { self.name = name; self.source = source }; public let name: String; public let source: String; public var placeholders: [Placeholder] = []; public func render(_ value: (String) -> String?) throws(TemplateError) -> String { source } }
public struct CSVHeader: Sendable { public init(fields: [String]) { names = fields }; public func index(of name: String) -> Int? { names.firstIndex(of: name) }; public let names: [String] }
public enum CSVRow: Sendable, Equatable { case record(line: Int, fields: [String]); case malformed(line: Int, reason: String) }
public struct CSVPushParser: Sendable { public init(maxRecordBytes: Int = 65536) {}; public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (CSVRow) throws -> Void) rethrows {}; public mutating func finish(_ emit: (CSVRow) throws -> Void) rethrows {} }
