using System.Text.Json;

namespace ExtProc.Tests.Wire;

/// <summary>
/// Envoy's upstream API definitions as shipped in the pinned npm package @grpc/grpc-js-xds (tests/test.sh
/// installs it and exports EXTPROC_ENVOY_API_DIR). Its envoy-api copy is data-plane-api of 2024-04.
/// </summary>
internal static class UpstreamEnvoyApi
{
    public const string PackageName = "@grpc/grpc-js-xds";
    public const string PackageVersion = "1.14.1";
    public const string DirVariable = "EXTPROC_ENVOY_API_DIR";

    private static readonly Lazy<string> s_deps = new(Locate);

    /// <summary>The package's deps folder (holds envoy-api/, xds/, protoc-gen-validate/, googleapis/).</summary>
    public static string DepsDir => s_deps.Value;

    /// <summary>The -I roots that make the npm copy a complete import closure (well-known types come from protoc's own include).</summary>
    public static IReadOnlyList<string> IncludeDirs =>
    [
        Path.Combine(DepsDir, "envoy-api"),
        Path.Combine(DepsDir, "xds"),
        Path.Combine(DepsDir, "protoc-gen-validate"),
        Path.Combine(DepsDir, "googleapis"),
    ];

    private static readonly Lazy<string> s_validateShim = new(WriteValidateShim);

    /// <summary>
    /// <see cref="IncludeDirs"/> for the wider config closure (cluster, listener, protocol options). There the npm
    /// copy is not self-consistent: envoy-api uses PGV's <c>StringRules.ignore_empty</c>, which its bundled
    /// validate.proto predates. A patched copy of that file, written at test time to a temp folder and searched
    /// first, adds the one option field; it only carries validation options, never a config field.
    /// </summary>
    public static IReadOnlyList<string> ConfigIncludeDirs => [s_validateShim.Value, .. IncludeDirs];

    private static string WriteValidateShim()
    {
        var original = File.ReadAllText(Path.Combine(DepsDir, "protoc-gen-validate", "validate", "validate.proto")).Replace("\r\n", "\n", StringComparison.Ordinal);
        const string anchor = "message StringRules {\n";
        var patched = original.Contains("ignore_empty", StringComparison.Ordinal) || !original.Contains(anchor, StringComparison.Ordinal)
            ? original
            : original.Replace(anchor, anchor + "    optional bool ignore_empty = 26;\n", StringComparison.Ordinal);
        var dir = Path.Combine(Path.GetTempPath(), $"extproc-validate-shim-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(dir, "validate"));
        File.WriteAllText(Path.Combine(dir, "validate", "validate.proto"), patched);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, recursive: true);
        return dir;
    }

    private static string Locate()
    {
        var fromEnv = Environment.GetEnvironmentVariable(DirVariable);
        var deps = string.IsNullOrEmpty(fromEnv)
            ? TestRepo.PathOf(".artifacts", "node", "node_modules", "@grpc", "grpc-js-xds", "deps")
            : fromEnv;
        var source = string.IsNullOrEmpty(fromEnv) ? "the default location" : $"{DirVariable}";

        var marker = Path.Combine(deps, "envoy-api", "envoy", "service", "ext_proc", "v3", "external_processor.proto");
        if (!File.Exists(marker))
        {
            throw new InvalidOperationException(TestRepo.MissingDependency(
                $"Envoy's upstream API definitions ({PackageName}@{PackageVersion}) are missing: {marker} does not exist ({source})."));
        }

        // Pinned: a different package version would silently change what "upstream" means.
        var packageJson = Path.Combine(deps, "..", "package.json");
        if (File.Exists(packageJson))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(packageJson));
            var version = doc.RootElement.GetProperty("version").GetString();
            if (version != PackageVersion)
            {
                throw new InvalidOperationException(TestRepo.MissingDependency(
                    $"{PackageName} at {deps} is version {version}, expected the pinned {PackageVersion}."));
            }
        }

        return Path.GetFullPath(deps);
    }
}
