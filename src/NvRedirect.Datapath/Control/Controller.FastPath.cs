using System.Collections.Generic;
using NvRedirect.Datapath.Engine;

namespace NvRedirect.Datapath.Control;

// The kernel fast path and configuration changes (docs/datapath.md, "The kernel fast path"): before a datagram that
// changes a workload's policy, mode, tap switch or registration (or the settings every decision depends on) is
// answered, what the fast path forwards for the workloads concerned is revoked, so the next packet of each of their
// flows is decided again by the new configuration.
internal sealed partial class Controller
{
    /// <summary>Workloads whose published flows a change from <paramref name="before"/> to <paramref name="after"/> revokes (0 = all).</summary>
    internal static List<ulong> RevokedBy(WorkloadTable before, WorkloadTable after, IReadOnlyCollection<ulong> tapChanged, bool settingsChanged)
    {
        if (settingsChanged) return [0];
        var macs = new List<ulong>(tapChanged);
        foreach (var w in before.Workloads)
            if (!after.TryGet(w.Mac, out var now) || !ReferenceEquals(now, w)) macs.Add(w.Mac);
        return macs;
    }

    private void RevokeFastPath(WorkloadTable before, WorkloadTable after, IReadOnlyCollection<ulong> tapChanged, bool settingsChanged)
    {
        if (_datapath.Sessions.FastPath == null) return;
        var macs = RevokedBy(before, after, tapChanged, settingsChanged);
        if (macs.Count == 0) return;
        // on the packet thread, between batches: the batch that may still have decided under the old table is over,
        // and the next one reads the new table
        _datapath.OnPacketThread(() =>
        {
            foreach (var mac in macs) _datapath.Sessions.RevokeFastPath(mac);
            return 0;
        });
    }
}
