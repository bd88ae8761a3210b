using System.Text.Json;

namespace ExtProc.Tests.Wire;

/// <summary>
/// Envoy's upstream API definitions as shipped in the pinned npm package @grpc/grpc-js-xds (tests/run.sh
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
