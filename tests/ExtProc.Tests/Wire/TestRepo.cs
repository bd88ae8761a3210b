namespace ExtProc.Tests.Wire;

/// <summary>Locates the repository root from the test output folder, so tests read the files we ship.</summary>
internal static class TestRepo
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    public static string Root => s_root.Value;

    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>True when running under CI, where a missing test dependency must fail loudly.</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Builds the message for a missing test dependency; the test fails with it in CI and locally alike.</summary>
    public static string MissingDependency(string what) =>
        IsCi
            ? $"CI=true: {what} This test never skips in CI; tests/test.sh installs the dependency before running."
            : $"{what} Run tests/test.sh once (it installs the test dependencies), then re-run the tests.";

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ExtProc.sln")) && Directory.Exists(Path.Combine(dir.FullName, "protos")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"Cannot find the repository root (ExtProc.sln) above {AppContext.BaseDirectory}.");
    }
}
