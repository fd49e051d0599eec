using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;

namespace NvRedirect.Core.Topology;

/// <summary>The diagram languages ConvertTo-TopologyDiagram writes.</summary>
public enum TopologyDiagramFormat
{
    /// <summary>A Mermaid flowchart (GitHub renders it in Markdown).</summary>
    Mermaid,
    /// <summary>Graphviz DOT.</summary>
    Dot,
    /// <summary>SVG, drawn from the DOT text by Graphviz's dot.</summary>
    Svg,
}

/// <summary>A tool a command needs is not installed; the message names it and how to install it.</summary>
public sealed class ToolNotInstalledException(string message) : InvalidOperationException(message);

/// <summary>
/// Draws an <see cref="AgentTopology"/>: each namespace a box (subgraph, cluster) holding its links; veth pairs as
/// thick undirected lines across boxes; steering rules as dashed arrows from the link they are on to the link they send
/// frames to, labelled with their pref and part; a datapath as a cylinder on its service port, with its registered
/// workloads, each joined to the interface that carries its MAC. Pure: the same topology gives the same text (golden
/// files in the tests); only <see cref="Svg"/> runs a program.
/// </summary>
public static class TopologyDiagram
{
    /// <summary>The diagram in <paramref name="format"/>.</summary>
    public static string Render(AgentTopology topology, TopologyDiagramFormat format, string? title = null) => format switch
    {
        TopologyDiagramFormat.Mermaid => Mermaid(topology, title),
        TopologyDiagramFormat.Dot => Dot(topology, title),
        TopologyDiagramFormat.Svg => Svg(Dot(topology, title)),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown diagram format"),
    };

    // The drawing, independent of the language: nodes (grouped by namespace) and edges.
    private enum NodeKind { Link, ExternalLink, Datapath, Workload }
    private enum EdgeKind { Veth, Steering, ServicePort, Registration, Interface }
    private sealed record Node(string Id, NodeKind Kind, string[] Lines, int Group);
    private sealed record Edge(string From, string To, EdgeKind Kind, string? Label);
    private sealed record Drawing(string[] Groups, List<Node> Nodes, List<Edge> Edges);

    private static Drawing Layout(AgentTopology t)
    {
        var groups = t.Namespaces.Select(GroupLabel).ToArray();
        var groupOf = t.Namespaces.Select((n, i) => (n.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        var nodes = new List<Node>();
        var edges = new List<Edge>();
        var linkIds = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var l in t.Links)
        {
            var id = $"l{linkIds.Count}";
            linkIds[l.Id] = id;
            var lines = new List<string> { l.Name, $"{(l.Kind.Length == 0 ? "device" : l.Kind)} {l.MacAddress}" };
            lines.AddRange(l.Addresses.Where(a => !a.StartsWith("fe80:", StringComparison.OrdinalIgnoreCase)));
            if (l.State != "Up") lines.Add(l.State.ToLowerInvariant());
            nodes.Add(new Node(id, NodeKind.Link, lines.ToArray(), groupOf[l.Namespace]));
        }
        // veth pairs, each once; a peer outside the topology's namespaces is drawn on its own
        var drawn = new HashSet<string>(StringComparer.Ordinal);
        int external = 0;
        foreach (var l in t.Links.Where(l => l.PeerName != null || l.PeerNamespace != null))
        {
            var peerId = l.PeerName != null && l.PeerNamespace != null ? TopologyIds.Link(l.PeerNamespace, l.PeerName) : null;
            if (peerId != null && linkIds.TryGetValue(peerId, out var peer))
            {
                var key = string.CompareOrdinal(linkIds[l.Id], peer) < 0 ? linkIds[l.Id] + "|" + peer : peer + "|" + linkIds[l.Id];
                if (drawn.Add(key)) edges.Add(new Edge(linkIds[l.Id], peer, EdgeKind.Veth, null));
                continue;
            }
            var outside = $"x{external++}";
            nodes.Add(new Node(outside, NodeKind.ExternalLink, [l.PeerName ?? "peer", $"in {(l.PeerNamespace is { Length: > 0 } pn ? pn : l.PeerNamespace == "" ? "(root)" : "another namespace")}"], -1));
            edges.Add(new Edge(linkIds[l.Id], outside, EdgeKind.Veth, null));
        }
        foreach (var r in t.SteeringRules)
        {
            if (!linkIds.TryGetValue(TopologyIds.Link(r.Namespace, r.LinkName), out var from)) continue;
            var what = r.Role is { } role ? role[(role.IndexOf(':') + 1)..].Trim() : $"{r.Kind} {r.Protocol}";
            foreach (var target in r.Targets)
                if (linkIds.TryGetValue(TopologyIds.Link(r.Namespace, target), out var to))
                    edges.Add(new Edge(from, to, EdgeKind.Steering, $"{r.Priority} {what}"));
        }
        for (int d = 0; d < t.Datapaths.Length; d++)
        {
            var dp = t.Datapaths[d];
            var id = $"dp{d}";
            nodes.Add(new Node(id, NodeKind.Datapath, ["nvr-dp", $"pid {dp.Pid}", dp.ControlSocket], groupOf[dp.Namespace]));
            foreach (var port in dp.ServicePorts)
                if (linkIds.TryGetValue(TopologyIds.Link(dp.Namespace, port), out var portId)) edges.Add(new Edge(portId, id, EdgeKind.ServicePort, "frames"));
            for (int w = 0; w < dp.Workloads.Length; w++)
            {
                var wl = dp.Workloads[w];
                var wid = $"dp{d}w{w}";
                var lines = new List<string> { wl.ContainerName is { } c ? $"workload {c}" : "workload", wl.Mac, $"{wl.Mode}, {(wl.Tap ? "tap" : "inline")}" };
                nodes.Add(new Node(wid, NodeKind.Workload, lines.ToArray(), groupOf[dp.Namespace]));
                edges.Add(new Edge(id, wid, EdgeKind.Registration, null));
                if (wl.Link != null && linkIds.TryGetValue(wl.Link, out var linkId)) edges.Add(new Edge(wid, linkId, EdgeKind.Interface, "MAC"));
            }
        }
        return new Drawing(groups, nodes, edges);
    }

    private static string GroupLabel(TopologyNamespace n)
    {
        var name = n.ContainerName is { } c ? $"container {c} ({n.Name})" : n.Name.Length == 0 ? "root namespace" : n.Name;
        return n.Role == "Other" ? name : $"{name} · {n.Role.ToLowerInvariant()}";
    }

    /// <summary>The topology as a Mermaid flowchart (left to right).</summary>
    public static string Mermaid(AgentTopology topology, string? title = null)
    {
        var d = Layout(topology);
        var s = new StringBuilder();
        // the title in Mermaid's YAML front matter, double-quoted (a colon in it would otherwise start a mapping)
        if (title != null)
            s.Append("---\ntitle: \"").Append(title.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal)).Append("\"\n---\n");
        s.Append("flowchart LR\n");
        string Label(Node n) => string.Join("<br/>", n.Lines.Select(MermaidText));
        void WriteNode(Node n, string indent)
        {
            var (open, close) = n.Kind switch
            {
                NodeKind.Datapath => ("[(\"", "\")]"),
                NodeKind.Workload => ("([\"", "\"])"),
                _ => ("[\"", "\"]"),
            };
            s.Append(indent).Append(n.Id).Append(open).Append(Label(n)).Append(close).Append(n.Kind switch
            {
                NodeKind.Datapath => ":::datapath", NodeKind.Workload => ":::workload", NodeKind.ExternalLink => ":::external", _ => "",
            }).Append('\n');
        }
        for (int g = 0; g < d.Groups.Length; g++)
        {
            s.Append("  subgraph ns").Append(g).Append("[\"").Append(MermaidText(d.Groups[g])).Append("\"]\n");
            foreach (var n in d.Nodes.Where(n => n.Group == g)) WriteNode(n, "    ");
            s.Append("  end\n");
        }
        foreach (var n in d.Nodes.Where(n => n.Group < 0)) WriteNode(n, "  ");
        foreach (var e in d.Edges)
        {
            var arrow = e.Kind switch
            {
                EdgeKind.Veth => "===",
                EdgeKind.Steering => "-.->",
                EdgeKind.ServicePort => "<==>",
                EdgeKind.Registration => "---",
                _ => "-.-",
            };
            s.Append("  ").Append(e.From).Append(' ').Append(arrow);
            if (e.Label != null) s.Append("|\"").Append(MermaidText(e.Label)).Append("\"|");
            s.Append(' ').Append(e.To).Append('\n');
        }
        s.Append("  classDef datapath fill:#fde8d8,stroke:#c05621\n");
        s.Append("  classDef workload fill:#e6f4ea,stroke:#2f855a\n");
        s.Append("  classDef external fill:#f2f2f2,stroke:#999,stroke-dasharray:3 3\n");
        return s.ToString();
    }

    // Mermaid label text: its entity codes for the characters that would end or break a quoted label
    private static string MermaidText(string text) => text
        .Replace("&", "#amp;", StringComparison.Ordinal).Replace("\"", "#quot;", StringComparison.Ordinal)
        .Replace("<", "#lt;", StringComparison.Ordinal).Replace(">", "#gt;", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    /// <summary>The topology as a Graphviz DOT digraph (left to right, a cluster per namespace).</summary>
    public static string Dot(AgentTopology topology, string? title = null)
    {
        var d = Layout(topology);
        var s = new StringBuilder();
        s.Append("digraph topology {\n");
        s.Append("  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, nodesep=0.3, ranksep=0.8");
        if (title != null) s.Append(", labelloc=t, label=\"").Append(DotText(title)).Append('"');
        s.Append("];\n");
        s.Append("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=10];\n");
        s.Append("  edge [fontname=\"Helvetica\", fontsize=9];\n");
        void WriteNode(Node n, string indent)
        {
            s.Append(indent).Append(n.Id).Append(" [label=\"").Append(string.Join("\\n", n.Lines.Select(DotText))).Append('"');
            s.Append(n.Kind switch
            {
                NodeKind.Datapath => ", shape=cylinder, fillcolor=\"#fde8d8\", color=\"#c05621\"",
                NodeKind.Workload => ", shape=box, style=\"rounded,filled\", fillcolor=\"#e6f4ea\", color=\"#2f855a\"",
                NodeKind.ExternalLink => ", style=\"rounded,dashed\", color=\"#999999\"",
                _ => "",
            });
            s.Append("];\n");
        }
        for (int g = 0; g < d.Groups.Length; g++)
        {
            s.Append("  subgraph cluster_ns").Append(g).Append(" {\n");
            s.Append("    label=\"").Append(DotText(d.Groups[g])).Append("\"; style=\"rounded,filled\"; fillcolor=\"#f4f7fb\"; color=\"#7a8ca5\";\n");
            foreach (var n in d.Nodes.Where(n => n.Group == g)) WriteNode(n, "    ");
            s.Append("  }\n");
        }
        foreach (var n in d.Nodes.Where(n => n.Group < 0)) WriteNode(n, "  ");
        foreach (var e in d.Edges)
        {
            s.Append("  ").Append(e.From).Append(" -> ").Append(e.To).Append(" [");
            s.Append(e.Kind switch
            {
                EdgeKind.Veth => "dir=none, penwidth=3, color=\"#4a5568\"",
                EdgeKind.Steering => "style=dashed, color=\"#2b6cb0\", fontcolor=\"#2b6cb0\"",
                EdgeKind.ServicePort => "dir=both, penwidth=2, color=\"#c05621\", fontcolor=\"#c05621\"",
                EdgeKind.Registration => "dir=none, color=\"#2f855a\"",
                _ => "style=dotted, dir=none, color=\"#2f855a\", fontcolor=\"#2f855a\"",
            });
            if (e.Label != null) s.Append(", label=\"").Append(DotText(e.Label)).Append('"');
            s.Append("];\n");
        }
        s.Append("}\n");
        return s.ToString();
    }

    // DOT string text: backslash and double quote escaped, newlines as \n
    private static string DotText(string text) => text
        .Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>Where Graphviz's dot is, from the PATH; null when it is not installed.</summary>
    public static string? FindDot() => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, "dot")).FirstOrDefault(File.Exists);

    /// <summary>
    /// Renders DOT text to SVG with Graphviz's dot (dot -Tsvg, the text on its stdin). Throws
    /// <see cref="ToolNotInstalledException"/> when dot is not on the PATH, <see cref="InvalidOperationException"/> with
    /// dot's own message when it fails.
    /// </summary>
    public static string Svg(string dot)
    {
        var program = FindDot() ?? throw new ToolNotInstalledException(
            "Graphviz's dot is not installed (not on the PATH): install the graphviz package (apt-get install graphviz), or write -Format Dot and render it elsewhere.");
        var psi = new ProcessStartInfo(program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-Tsvg");
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(dot);
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
            throw new InvalidOperationException($"{program} did not finish drawing within 60 s");
        }
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{program} -Tsvg failed (exit code {process.ExitCode}): {errors.Result.Trim()}");
        return output.Result;
    }
}
