using System;

namespace NvRedirect.Core.Datapath;

/// <summary>A datapath operation failed; the subclasses say how (each maps to its own error id in the cmdlets).</summary>
public class DatapathException : InvalidOperationException
{
    /// <summary>Builds the exception.</summary>
    public DatapathException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>Nothing answers on the control socket.</summary>
public sealed class DatapathNotRespondingException(string controlSocket, string? detail = null)
    : DatapathException($"no datapath answers on {controlSocket}{(detail == null ? "" : $" ({detail})")}: start one with Start-Datapath")
{
    /// <summary>The control socket that did not answer.</summary>
    public string ControlSocket { get; } = controlSocket;
}

/// <summary>The datapath refused a request; nothing of it was applied.</summary>
public sealed class DatapathRejectedException(string controlSocket, string reason)
    : DatapathException($"the datapath on {controlSocket} rejected the request, nothing was applied: {reason}")
{
    /// <summary>The datapath's reason.</summary>
    public string Reason { get; } = reason;
}

/// <summary>A datapath already serves the control socket.</summary>
public sealed class DatapathAlreadyRunningException(string message) : DatapathException(message);

/// <summary>The daemon could not start (its own message says why).</summary>
public sealed class DatapathStartException(string message) : DatapathException(message);

/// <summary>The daemon did not stop in time.</summary>
public sealed class DatapathStopException(string message) : DatapathException(message);

/// <summary>A reply that is not what nvr-dp sends.</summary>
public sealed class DatapathProtocolException(string message) : DatapathException(message);

/// <summary>dotnet or nvr-dp.dll cannot be found.</summary>
public sealed class DatapathNotInstalledException(string message) : DatapathException(message);

/// <summary>A message that was expected to produce replies produced none.</summary>
public sealed class DatapathNoReplyException(string message) : DatapathException(message);
