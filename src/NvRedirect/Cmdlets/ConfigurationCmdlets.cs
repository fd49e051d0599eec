using System;
using System.IO;
using System.Linq;
using System.Management.Automation;
using NvRedirect.Core.Configuration;
using NvRedirect.Core.Intercept;

namespace NvRedirect.Cmdlets;

/// <summary>What Test- and Set-NvRedirectConfiguration share: the document, from a file, a JSON string or an object, and its plan.</summary>
public abstract class ConfigurationCmdlet : NvCmdlet
{
    /// <summary>The parameter set names.</summary>
    protected const string PathSet = "Path", JsonSet = "Json", ObjectSet = "InputObject";

    /// <summary><para type="description">A JSON file with the configuration (docs/configuration.md).</para></summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    public string Path { get; set; } = "";

    /// <summary><para type="description">The configuration as a JSON string.</para></summary>
    [Parameter(Mandatory = true, ParameterSetName = JsonSet)]
    public string Json { get; set; } = "";

    /// <summary><para type="description">A configuration object, as Get-NvRedirectConfiguration returns it.</para></summary>
    [Parameter(Mandatory = true, ParameterSetName = ObjectSet, ValueFromPipeline = true)]
    public EnforcerConfiguration? InputObject { get; set; }

    /// <summary>The document named by the parameters (a parse error is an ArgumentException naming the field).</summary>
    protected EnforcerConfiguration ReadDocument() => ParameterSetName switch
    {
        PathSet => EnforcerConfiguration.Parse(ReadFile(GetUnresolvedProviderPathFromPSPath(Path))),
        JsonSet => EnforcerConfiguration.Parse(Json),
        _ => InputObject!,
    };

    private static string ReadFile(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ItemNotFoundException($"Cannot read the configuration file '{path}': {e.Message}");
        }
    }

    /// <summary>Runs the work, turning any failure into this cmdlet's error record (the one classifier).</summary>
    protected void Guard(object? target, Action work)
    {
        try { work(); }
        catch (Exception e) when (e is not PipelineStoppedException and not OutOfMemoryException)
        {
            WriteFailure(e, target);
        }
    }
}

/// <summary>
/// <para type="synopsis">Exports what runs in an enforcer as a configuration document: its datapath and the protected workloads with their modes and rules.</para>
/// <para type="description">Reads the enforcer namespace (default nvr-enforcer): the datapath running there (control socket, log file, session capacity, supervision), every taken-over container (by container name, else by its namespace file when that is a bind mount, else by process id), each one's mode and policy rules from the datapath. Interfaces are listed only when not all of the container's Ethernet interfaces are taken over; a container whose interfaces have different policies gets one entry per interface. Orphans (containers that exited) and lab interceptions (by MAC) are left out. Feeding the result to Set-NvRedirectConfiguration changes nothing; edit it (as JSON with -AsJson, or as an object) and apply it to change the host, or keep it in a repository and apply it on a rebuilt host. A namespace that does not exist is an error (GetNvRedirectConfigurationNamespaceNotFound). The format is in docs/configuration.md.</para>
/// </summary>
/// <example><code>Get-NvRedirectConfiguration -AsJson | Set-Content enforcer.json</code><para>Writes the running configuration of nvr-enforcer to a file, to be reviewed, edited and applied with Set-NvRedirectConfiguration.</para></example>
/// <example><code>(Get-NvRedirectConfiguration -Namespace enf1).Workloads | Format-Table Container, Mode, { $_.Rules.Count }</code><para>Shows the protected containers of enforcer enf1 with their modes and number of rules.</para></example>
[Cmdlet(VerbsCommon.Get, "NvRedirectConfiguration")]
[OutputType(typeof(EnforcerConfiguration), typeof(string))]
public sealed class GetNvRedirectConfigurationCommand : NvCmdlet
{
    /// <summary><para type="description">The enforcer namespace (default nvr-enforcer).</para></summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NamespaceNameCompleter))]
    public string Namespace { get; set; } = ContainerTakeover.DefaultEnforcer;

    /// <summary><para type="description">Return the document as JSON text instead of an object.</para></summary>
    [Parameter]
    public SwitchParameter AsJson { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        try
        {
            var doc = Configurator.Export(Namespace);
            WriteObject(AsJson ? doc.ToJson() : doc);
        }
        catch (Exception e) when (e is not PipelineStoppedException and not OutOfMemoryException) { WriteFailure(e, Namespace); }
    }
}

/// <summary>
/// <para type="synopsis">Tells whether the host matches a configuration document, changing nothing; with -Detailed, lists each difference.</para>
/// <para type="description">Reads the enforcer the document names (its datapath, taken-over workloads and their policies) and each workload it lists (a container by name, a process, or a namespace file), and compares. Returns True when Set-NvRedirectConfiguration would change nothing, else False; with -Detailed, returns the differences instead (none when it matches), each as the step Set would take to remove it, with the state before and after. A document that cannot be converged (a container that does not run, an interface it lacks, a datapath of the enforcer on another socket) is an error that says so.</para>
/// </summary>
/// <example><code>Test-NvRedirectConfiguration enforcer.json</code><para>True when the host matches enforcer.json.</para></example>
/// <example><code>Test-NvRedirectConfiguration enforcer.json -Detailed | Format-List Step, Action, Target, Reason, Before, After</code><para>Lists what differs: a container not taken over, a mode or rules that differ, a workload to give back.</para></example>
[Cmdlet(VerbsDiagnostic.Test, "NvRedirectConfiguration", DefaultParameterSetName = PathSet)]
[OutputType(typeof(bool), typeof(ConfigurationChange))]
public sealed class TestNvRedirectConfigurationCommand : ConfigurationCmdlet
{
    /// <summary><para type="description">Return each difference (as the step that would remove it) instead of True or False.</para></summary>
    [Parameter]
    public SwitchParameter Detailed { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord() => Guard(ParameterSetName == PathSet ? Path : "configuration", () =>
    {
        var desired = ReadDocument();
        var plan = Configurator.Plan(desired, Configurator.Observe(desired));
        if (Detailed) WriteObject(plan, enumerateCollection: true);
        else WriteObject(plan.Count == 0);
    });
}

/// <summary>
/// <para type="synopsis">Converges the host to a configuration document with the fewest changes, in an order that never opens a protected workload, and returns the changes made.</para>
/// <para type="description">Plans as Test-NvRedirectConfiguration -Detailed does, then takes each step: starts the enforcer's datapath when none runs (with the document's socket, log file, capacities and supervision); takes over each listed container that is not (registered in its wanted mode, Protect for a custom one, with no rules yet: never more open than the end state); writes each workload's policy whose mode or rules differ as one change carrying the default action and the rules together, which the datapath applies whole, so no moment has the new mode with the old rules or the reverse; and last gives back the workloads the document marks absent or, with removeUnlisted (the default), does not list, and removes what is left of exited ones. Workloads that already match are not touched, so a second call changes nothing and returns nothing. -WhatIf prints the plan, step by step. A step that fails stops the run with the step named and the kernel's or datapath's message; the steps before it stay done (each is a state the document allows), and the next call continues from there.</para>
/// </summary>
/// <example><code>Set-NvRedirectConfiguration enforcer.json -WhatIf</code><para>Prints the plan: what would be started, taken over, switched or given back, in order.</para></example>
/// <example><code>Set-NvRedirectConfiguration -Json '{"namespace":"nvr-enforcer","workloads":[{"container":"web","mode":"protect","rules":[{"protocol":"tcp","port":"8080"}]}]}'</code><para>Protects the podman container web, letting only TCP to its port 8080 in, and gives back any other container of nvr-enforcer.</para></example>
/// <example><code>Get-NvRedirectConfiguration | Set-NvRedirectConfiguration</code><para>Changes nothing: the running state applied to itself.</para></example>
[Cmdlet(VerbsCommon.Set, "NvRedirectConfiguration", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = PathSet)]
[OutputType(typeof(ConfigurationChange))]
public sealed class SetNvRedirectConfigurationCommand : ConfigurationCmdlet
{
    /// <inheritdoc/>
    protected override void ProcessRecord() => Guard(ParameterSetName == PathSet ? Path : "configuration", () =>
    {
        var desired = ReadDocument();
        var plan = Configurator.Plan(desired, Configurator.Observe(desired));
        int done = 0;
        foreach (var change in plan)
        {
            if (!ShouldProcess($"{change.Target} in namespace {change.Namespace}", $"{change.Action} ({change.Reason})")) continue;
            try { Configurator.Execute(desired, change); }
            catch (Exception e) when (e is not PipelineStoppedException and not OutOfMemoryException)
            {
                var record = ToErrorRecord(e, change);
                record.ErrorDetails = new ErrorDetails($"Step {change.Step} of {plan.Count} ({change.Description}) failed after {done} change{(done == 1 ? "" : "s")}: {e.Message}")
                {
                    RecommendedAction = record.ErrorDetails?.RecommendedAction,
                };
                WriteError(record);
                return;
            }
            done++;
            WriteObject(change);
        }
    });
}
