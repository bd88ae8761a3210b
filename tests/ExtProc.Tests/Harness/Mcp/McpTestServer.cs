using System.Collections.Concurrent;
using System.ComponentModel;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.AspNetCore;
using ModelContextProtocol.Server;

namespace ExtProc.Tests.Harness.Mcp;

/// <summary>
/// A real MCP server (ModelContextProtocol.AspNetCore, stateful Streamable HTTP, SSE answers) on Kestrel
/// loopback. It counts every tool invocation, so a test can assert that a refused call never arrived.
/// </summary>
internal sealed class McpTestServer : IAsyncDisposable
{
    private WebApplication _app = null!;

    public Uri BaseUri { get; private set; } = null!;

    public McpToolCalls Calls { get; } = new();

    public static async Task<McpTestServer> StartAsync()
    {
        var server = new McpTestServer();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        builder.Services.AddSingleton(server.Calls);
        builder.Services.AddMcpServer()
            .WithHttpTransport(o => o.SessionMode = HttpServerSessionMode.Stateful)
            .WithTools<McpTestTools>();
        var app = builder.Build();
        app.MapMcp("/mcp");
        await app.StartAsync();
        server._app = app;
        server.BaseUri = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        Calls.ReleaseSlow();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Invocations per tool, and a gate that holds the slow tool in flight.</summary>
internal sealed class McpToolCalls
{
    private readonly ConcurrentDictionary<string, int> _counts = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource SlowStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Of(string tool) => _counts.TryGetValue(tool, out var count) ? count : 0;

    public void Count(string tool) => _counts.AddOrUpdate(tool, 1, static (_, n) => n + 1);

    public Task Gate => _gate.Task;

    public void ReleaseSlow() => _gate.TrySetResult();
}

[McpServerToolType]
internal sealed class McpTestTools
{
    [McpServerTool(Name = "echo", ReadOnly = true), Description("Echoes the message.")]
    public static string Echo(McpToolCalls calls, string message)
    {
        calls.Count("echo");
        return message;
    }

    [McpServerTool(Name = "get-sum", ReadOnly = true), Description("Adds two numbers.")]
    public static int GetSum(McpToolCalls calls, int a, int b)
    {
        calls.Count("get-sum");
        return a + b;
    }

    [McpServerTool(Name = "get-secret", Destructive = true, ReadOnly = false), Description("Reads and rotates the secret.")]
    public static string GetSecret(McpToolCalls calls)
    {
        calls.Count("get-secret");
        return "s3cret";
    }

    [McpServerTool(Name = "wipe-db", Destructive = true, ReadOnly = false), Description("Deletes every row.")]
    public static string WipeDb(McpToolCalls calls)
    {
        calls.Count("wipe-db");
        return "wiped";
    }

    [McpServerTool(Name = "get-slow", ReadOnly = true), Description("Waits until the test lets it finish.")]
    public static async Task<string> GetSlow(McpToolCalls calls)
    {
        calls.Count("get-slow");
        calls.SlowStarted.TrySetResult();
        await calls.Gate;
        return "done";
    }
}
