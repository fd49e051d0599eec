namespace NvRedirect.Datapath;

/// <summary>nvr-dp entry point (placeholder until the daemon lands).</summary>
public static class Program
{
    /// <summary>Runs the daemon.</summary>
    public static int Main(string[] args)
    {
        System.Console.Error.WriteLine("nvr-dp: not implemented yet");
        return 2;
    }
}
