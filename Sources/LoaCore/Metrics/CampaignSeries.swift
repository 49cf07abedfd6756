/// Which campaigns keep their per-campaign series in `/metrics`. A series per finished campaign kept forever
/// grows the scrape and Prometheus's index without bound (one `loa_messages` series per campaign, carrier and
/// state); a finished campaign's numbers stay in the store, `loa campaign show` and `loa report`.
public enum CampaignSeries {
    /// Finished campaigns keep their series this long after they finished: long enough for the scrapes that see
    /// their last counts and for alerts to resolve.
    public static let keepFinishedMillis: UnixMillis = 3600 * 1000
    /// At most this many finished campaigns keep their series (the most recently finished).
    public static let keepFinishedAtMost = 20
    /// The rule, as `/metrics` states it in its HELP lines.
    public static let rule = "campaigns not finished, and finished ones for an hour after they finished (at most the 20 most recent)"

    /// The campaigns to show: every one not finished, and the finished ones that finished within
    /// ``keepFinishedMillis`` of `now`, at most ``keepFinishedAtMost`` of them (the latest). Order is kept.
    public static func kept<T>(_ campaigns: [T], now: UnixMillis, finished: (T) -> Bool, finishedAt: (T) -> UnixMillis) -> [T] {
        let recent = campaigns.indices
            .filter { finished(campaigns[$0]) && now - finishedAt(campaigns[$0]) <= keepFinishedMillis }
            .sorted { finishedAt(campaigns[$0]) > finishedAt(campaigns[$1]) }
            .prefix(keepFinishedAtMost)
        let keep = Set(recent)
        return campaigns.indices.filter { !finished(campaigns[$0]) || keep.contains($0) }.map { campaigns[$0] }
    }
}
