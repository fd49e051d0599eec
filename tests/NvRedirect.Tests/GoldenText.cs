using System;
using System.IO;
using Xunit;

namespace NvRedirect.Tests;

/// <summary>
/// Compares generated text with a golden file in Golden/. On a difference the actual text is written next to the
/// test's output (Golden/NAME.actual) so a reviewer can diff it, and copy it over the golden file when the change is meant.
/// </summary>
public static class GoldenText
{
    /// <summary>Asserts <paramref name="actual"/> equals Golden/<paramref name="fileName"/>.</summary>
    public static void AssertMatches(string fileName, string actual)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Golden", fileName);
        Assert.True(File.Exists(path), $"golden file {path} is missing");
        var expected = File.ReadAllText(path);
        if (expected == actual) return;
        File.WriteAllText(path + ".actual", actual);
        Assert.Fail($"{fileName} differs from the golden text; the actual text is in {path}.actual:\n{actual}");
    }
}
