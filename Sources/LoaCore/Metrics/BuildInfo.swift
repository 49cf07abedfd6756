/// The version `loa version` prints and `/metrics` exports as `loa_build_info{version=…}`.
public enum BuildInfo {
    public static let version = "0.1.0"
}
