using System;
using System.Collections.Generic;
using System.Linq;
using NvRedirect.Core.Datapath;
using NvRedirect.Core.Intercept;
using NvRedirect.Core.Links;
using NvRedirect.Core.Model;
using NvRedirect.Core.Namespaces;
using NvRedirect.Core.Tc;

namespace NvRedirect.Core.Topology;

/// <summary>
/// Reads a topology with the module's existing queries: the links of each namespace (<see cref="LinkQuery"/>, as
/// Get-AgentLink), the ingress filters of the links that have an ingress qdisc (<see cref="TrafficControl"/>, as
/// Get-RedirectFilter), the interceptions (<see cref="ContainerTakeover.List"/>, as Get-WorkloadInterception) and the
/// running datapaths (<see cref="DatapathProcess.Find"/>, as Get-Datapath); then <see cref="AgentTopology.Build"/>.
/// </summary>
public static class TopologyReader
{
    /// <summary>The topology of <paramref name="namespaces"/> (names, "" for the root namespace, or /proc/PID/ns/net paths).</summary>
    public static AgentTopology Read(IReadOnlyList<string> namespaces, TimeSpan datapathTimeout)
    {
        var links = new List<AgentLink>();
        var filters = new List<RedirectFilter>();
        var interceptions = new List<InterceptionInfo>();
        using (var query = new LinkQuery())
        {
            foreach (var ns in namespaces)
            {
                var own = query.Links(ns);
                links.AddRange(own);
                var tc = new TrafficControl(query.Handle(ns));
                var names = own.ToDictionary(l => l.Index, l => l.Name);
                var ingress = tc.ListQdiscs().Where(q => q.IsIngress).Select(q => q.LinkIndex).ToHashSet();
                foreach (var link in own.Where(l => ingress.Contains(l.Index)))
                    filters.AddRange(tc.ListFilters(link.Index, names: names).Select(f => RedirectFilter.From(ns, f)));
                if (filters.Any(f => f.Namespace == ns && f.IsOwned) && !NetworkNamespace.IsPath(ns))
                    interceptions.AddRange(ContainerTakeover.List(ns, withDatapath: false));
            }
        }
        var datapaths = DatapathProcess.Find(datapathTimeout).Where(d => namespaces.Contains(d.Namespace)).ToList();
        return AgentTopology.Build(namespaces, links, filters, interceptions, datapaths);
    }
}
