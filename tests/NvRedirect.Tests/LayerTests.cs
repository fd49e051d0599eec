using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Reflection.Emit;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// design.md's one-way layers, checked on the compiled assemblies: every type, field, method signature and every
/// token in every method body (calls, field accesses, type tokens, lambdas' closures) of a namespace may name only its
/// own namespace or one of a lower layer. A reference that goes up a layer, a core that needs PowerShell, or an
/// assembly that reaches another's internals fails here, not in review.
/// </summary>
public sealed class LayerTests
{
    /// <summary>The core's namespaces, lowest first. A namespace may use only namespaces of a lower rank.</summary>
    private static readonly Dictionary<string, int> CoreRanks = new()
    {
        ["NvRedirect.Core.Interop"] = 0,     // syscalls
        ["NvRedirect.Core.Netlink"] = 1,     // netlink messages and the socket
        ["NvRedirect.Core.Namespaces"] = 2,  // setns threads, /run/netns
        ["NvRedirect.Core.Bpf"] = 3,         // assembler, loader, MAC-rewrite program
        ["NvRedirect.Core.Model"] = 4,       // link/address/namespace objects and input validators (names, MACs, CIDRs)
        ["NvRedirect.Core.Protocol"] = 5,    // the datapath control protocol (names, enums, readers, writers)
        ["NvRedirect.Core.Links"] = 5,       // link, address, ethtool operations
        ["NvRedirect.Core.Packets"] = 6,     // frame parser, packet sockets, capture
        ["NvRedirect.Core.Tc"] = 6,          // tc codecs and operations
        ["NvRedirect.Core.Datapath"] = 7,    // the datapath client and process management
        ["NvRedirect.Core.Probes"] = 7,      // connection probes and echo servers
        ["NvRedirect.Core.Intercept"] = 8,   // interception plans, seed topology, container take-over
        ["NvRedirect.Core.Topology"] = 9,    // topology model (from the queries above) and its diagrams
        ["NvRedirect.Core.Configuration"] = 9, // desired state: the document, its plan and convergence
    };

    private static readonly Assembly Core = typeof(NvRedirect.Core.Netlink.NetlinkMessage).Assembly;
    private static readonly Assembly Module = typeof(NvRedirect.Cmdlets.NvCmdlet).Assembly;
    private static readonly Assembly Daemon = typeof(NvRedirect.Datapath.Logger).Assembly;

    [Fact]
    public void Every_core_namespace_has_a_layer()
    {
        var unknown = Core.GetTypes().Select(t => t.Namespace).Where(n => n != null && n.StartsWith("NvRedirect.Core.", StringComparison.Ordinal))
            .Distinct().Where(n => !CoreRanks.ContainsKey(n!)).ToList();
        Assert.True(unknown.Count == 0, $"namespaces without a layer in LayerTests.CoreRanks (add them, lowest layer that works): {string.Join(", ", unknown)}");
    }

    [Fact]
    public void Core_namespaces_reference_only_lower_layers()
    {
        var violations = new List<string>();
        foreach (var (from, to, where) in References(Core))
        {
            if (from == to || !CoreRanks.TryGetValue(from, out int a) || !CoreRanks.TryGetValue(to, out int b)) continue;
            if (b >= a) violations.Add($"{where}: {from} (layer {a}) uses {to} (layer {b})");
        }
        Assert.True(violations.Count == 0, "references that go up (or across) a layer:\n" + string.Join("\n", violations.Distinct().Take(40)));
    }

    [Fact]
    public void The_daemon_engine_never_reaches_up_into_its_control_plane()
    {
        var violations = References(Daemon)
            .Where(r => r.From.StartsWith("NvRedirect.Datapath.Engine", StringComparison.Ordinal) && r.To.StartsWith("NvRedirect.Datapath.Control", StringComparison.Ordinal))
            .Select(r => $"{r.Where} uses {r.To}").Distinct().ToList();
        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void The_core_needs_no_PowerShell_and_knows_neither_the_module_nor_the_daemon()
    {
        var names = Core.GetReferencedAssemblies().Select(a => a.Name).ToList();
        Assert.DoesNotContain("System.Management.Automation", names);
        Assert.DoesNotContain("NvRedirect", names);
        Assert.DoesNotContain("nvr-dp", names);
        Assert.DoesNotContain("System.Management.Automation", Daemon.GetReferencedAssemblies().Select(a => a.Name));
        Assert.DoesNotContain("NvRedirect", Daemon.GetReferencedAssemblies().Select(a => a.Name));
    }

    [Fact]
    public void Each_assembly_has_its_own_root_namespace()
    {
        Assert.All(Core.GetTypes().Where(t => t.Namespace != null && !IsCompilerNamespace(t.Namespace)), t => Assert.StartsWith("NvRedirect.Core.", t.Namespace + "."));
        Assert.All(Module.GetTypes().Where(t => t.Namespace != null && !IsCompilerNamespace(t.Namespace)), t => Assert.StartsWith("NvRedirect.Cmdlets", t.Namespace));
        Assert.All(Daemon.GetTypes().Where(t => t.Namespace != null && !IsCompilerNamespace(t.Namespace)), t => Assert.StartsWith("NvRedirect.Datapath", t.Namespace));
    }

    [Fact]
    public void Product_assemblies_show_their_internals_only_to_the_tests()
    {
        foreach (var assembly in new[] { Core, Module, Daemon })
        {
            var friends = assembly.GetCustomAttributes<System.Runtime.CompilerServices.InternalsVisibleToAttribute>().Select(a => a.AssemblyName).ToList();
            Assert.True(friends.All(f => f == "NvRedirect.Tests"), $"{assembly.GetName().Name} shows its internals to {string.Join(", ", friends)}");
        }
    }

    private static bool IsCompilerNamespace(string ns) => ns.StartsWith("System", StringComparison.Ordinal) || ns.StartsWith("Microsoft", StringComparison.Ordinal);

    /// <summary>(namespace of the user, namespace of the used type, where) for every type reference in the assembly.</summary>
    private static IEnumerable<(string From, string To, string Where)> References(Assembly assembly)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var type in assembly.GetTypes())
        {
            string? from = type.Namespace;
            if (from == null) continue;
            var used = new List<(Type T, string Where)>();
            if (type.BaseType != null) used.Add((type.BaseType, type.FullName + " (base)"));
            used.AddRange(type.GetInterfaces().Select(i => (i, type.FullName + " (interface)")));
            foreach (var f in type.GetFields(all)) used.Add((f.FieldType, $"{type.FullName}.{f.Name}"));
            foreach (var m in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                string where = $"{type.FullName}.{m.Name}";
                if (m is MethodInfo mi) used.Add((mi.ReturnType, where));
                used.AddRange(m.GetParameters().Select(p => (p.ParameterType, where)));
                foreach (var t in TypesInBody(m)) used.Add((t, where));
            }
            foreach (var (t, where) in used)
                foreach (var ns in Namespaces(t))
                    yield return (from, ns, where);
        }
    }

    /// <summary>The namespaces a type names, its generic arguments and element types included.</summary>
    private static IEnumerable<string> Namespaces(Type t)
    {
        while (t.HasElementType) t = t.GetElementType()!;
        if (t.IsGenericParameter) yield break;
        if (t.Namespace != null) yield return t.Namespace;
        if (t.IsGenericType)
            foreach (var a in t.GetGenericArguments())
                foreach (var ns in Namespaces(a)) yield return ns;
    }

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>The declaring types of every member and type token in a method body.</summary>
    private static List<Type> TypesInBody(MethodBase method)
    {
        var found = new List<Type>();
        byte[]? il = method.GetMethodBody()?.GetILAsByteArray();
        if (il == null) return found;
        Type[]? typeArgs = method.DeclaringType is { IsGenericType: true } dt ? dt.GetGenericArguments() : null;
        Type[]? methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            var op = OpCodesByValue[value];
            int size = op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4,
            };
            if (op.OperandType is OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok)
            {
                int token = BitConverter.ToInt32(il, i);
                try
                {
                    var member = method.Module.ResolveMember(token, typeArgs, methodArgs);
                    if ((member as Type ?? member?.DeclaringType) is Type declaring) found.Add(declaring);
                    if (member is FieldInfo fi) found.Add(fi.FieldType);
                }
                catch (ArgumentException) { /* a token of a generic context we cannot rebuild: its owner is checked elsewhere */ }
            }
            i += size;
        }
        return found;
    }
}
