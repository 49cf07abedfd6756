import Foundation
import LoaCore
import LoaStore

/// The events an operator on call waits for, each logged once at its level (README "Operations"): a campaign
/// started, paused, resumed, cancelled, completed (with its final counts) or expired; a carrier's breaker opened
/// (with its cause) and closed; receipts overdue; what a start recovered (``Daemon/logRecovery(_:logger:)``).
extension Dispatcher {
    /// Logs what ``CampaignWatch`` found in this refresh: a start with the campaign's deadline, an end with its
    /// final state and counts read from the store.
    func logCampaignEvents(_ events: [CampaignWatch.Event], active: [ActiveCampaign]) {
        for event in events {
            switch event {
            case .started(let id):
                var meta = ["campaign.id": id]
                if let c = active.first(where: { $0.id == id }) { meta["campaign.deadline"] = ISOTime.format(c.deadlineAt) }
                logger.notice("campaign started", meta)
            case .ended(let id):
                guard let c = try? store.campaign(id), let line = CampaignWatch.ending(c.state, counts: c.states) else { continue }
                logger.log(line.level, line.message, line.metadata.merging(["campaign.id": id]) { $1 })
            }
        }
    }

    /// Logs a receipt sweep that found overdue receipts: `count` messages sent more than `receipt_timeout_seconds`
    /// ago without a final receipt are now `unknown` (a late receipt can still settle them).
    func logOverdueReceipts(_ count: Int) {
        guard count > 0 else { return }
        logger.warning("receipts overdue: sent messages without a final receipt are now unknown",
                       ["count": "\(count)", "receipt_timeout_seconds": "\(receiptTimeoutSeconds)"])
    }
}

extension CampaignState {
    /// The daemon log's message for an operator's pause, resume or cancel that left the campaign in this state.
    var operatorMessage: String {
        switch self {
        case .paused: "campaign paused by the operator"
        case .running, .scheduled: "campaign resumed by the operator"
        case .cancelled: "campaign cancelled by the operator"
        default: "campaign state changed by the operator"
        }
    }
}
