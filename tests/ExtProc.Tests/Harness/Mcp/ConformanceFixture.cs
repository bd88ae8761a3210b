using System.ComponentModel;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.AspNetCore;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

// The suite still scores logging (2025-11-25 scenarios), which the 2026-07-28 revision deprecates.
#pragma warning disable MCP9005

namespace ExtProc.Tests.Harness.Mcp;

/// <summary>
/// Our server for the <c>@modelcontextprotocol/conformance</c> server scenarios (specs/mcp.md §9.1): the tool,
/// resource and prompt names the suite calls, built on ModelContextProtocol.AspNetCore (stateful, SSE).
/// Scenarios it does not implement fail the same way directly and through the gateway.
/// </summary>
internal sealed class ConformanceFixture : IAsyncDisposable
{
    // A 1x1 PNG and a 44-byte silent WAV header: small, valid media for the content scenarios.
    internal static readonly byte[] Png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=");
    internal static readonly byte[] Wav = Convert.FromBase64String("UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=");

    private WebApplication _app = null!;

    public Uri BaseUri { get; private set; } = null!;

    public static async Task<ConformanceFixture> StartAsync()
    {
        var fixture = new ConformanceFixture();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        builder.Services.AddMcpServer()
            .WithHttpTransport(o => o.SessionMode = HttpServerSessionMode.Stateful)
            .WithTools<ConformanceTools>()
            .WithResources<ConformanceResources>()
            .WithPrompts<ConformancePrompts>()
            .WithSetLoggingLevelHandler((_, _) => ValueTask.FromResult(new EmptyResult()))
            .WithCompleteHandler((_, _) => ValueTask.FromResult(new CompleteResult
            {
                Completion = new Completion { Values = ["paris", "park", "party"], Total = 3, HasMore = false },
            }));
        var app = builder.Build();
        app.MapMcp("/mcp");
        await app.StartAsync();
        fixture._app = app;
        fixture.BaseUri = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return fixture;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

[McpServerToolType]
internal sealed class ConformanceTools
{
    [McpServerTool(Name = "test_simple_text"), Description("Returns simple text.")]
    public static string SimpleText() => "This is a simple text response for testing.";

    [McpServerTool(Name = "test_image_content"), Description("Returns an image.")]
    public static ContentBlock Image() => ImageContentBlock.FromBytes(ConformanceFixture.Png, "image/png");

    [McpServerTool(Name = "test_audio_content"), Description("Returns audio.")]
    public static ContentBlock Audio() => AudioContentBlock.FromBytes(ConformanceFixture.Wav, "audio/wav");

    [McpServerTool(Name = "test_embedded_resource"), Description("Returns an embedded resource.")]
    public static ContentBlock Embedded() => new EmbeddedResourceBlock
    {
        Resource = new TextResourceContents { Uri = "test://embedded-resource", MimeType = "text/plain", Text = "Embedded resource content." },
    };

    [McpServerTool(Name = "test_multiple_content_types"), Description("Returns text, image and resource.")]
    public static IEnumerable<ContentBlock> Mixed() =>
    [
        new TextContentBlock { Text = "Multiple content types test:" },
        ImageContentBlock.FromBytes(ConformanceFixture.Png, "image/png"),
        Embedded(),
    ];

    [McpServerTool(Name = "test_tool_with_logging"), Description("Logs three messages.")]
    public static async Task<string> WithLogging(McpServer server, CancellationToken cancellation)
    {
        foreach (var text in new[] { "Tool execution started", "Tool processing data", "Tool execution completed" })
        {
            await server.SendNotificationAsync(NotificationMethods.LoggingMessageNotification, new LoggingMessageNotificationParams
            {
                Level = LoggingLevel.Info,
                Data = JsonSerializer.SerializeToElement(text),
            }, cancellationToken: cancellation);
            await Task.Delay(20, cancellation);
        }

        return "Logging done.";
    }

    [McpServerTool(Name = "test_tool_with_progress"), Description("Reports progress three times.")]
    public static async Task<string> WithProgress(IProgress<ProgressNotificationValue> progress, CancellationToken cancellation)
    {
        for (var step = 0; step <= 100; step += 50)
        {
            progress.Report(new ProgressNotificationValue { Progress = step, Total = 100 });
            await Task.Delay(20, cancellation);
        }

        return "Progress done.";
    }

    [McpServerTool(Name = "test_error_handling"), Description("Always fails.")]
    public static CallToolResult Error() => new()
    {
        IsError = true,
        Content = [new TextContentBlock { Text = "This tool intentionally returns an error for testing" }],
    };
}

[McpServerResourceType]
internal sealed class ConformanceResources
{
    [McpServerResource(UriTemplate = "test://static-text", Name = "static-text", MimeType = "text/plain"), Description("Static text.")]
    public static string StaticText() => "This is the content of the static text resource.";

    [McpServerResource(UriTemplate = "test://static-binary", Name = "static-binary", MimeType = "image/png"), Description("Static PNG.")]
    public static ResourceContents StaticBinary() => BlobResourceContents.FromBytes(ConformanceFixture.Png, "test://static-binary", "image/png");

    [McpServerResource(UriTemplate = "test://template/{id}/data", Name = "template", MimeType = "application/json"), Description("Templated data.")]
    public static string Template(string id) => JsonSerializer.Serialize(new Dictionary<string, object> { ["id"] = id, ["templateTest"] = true, ["data"] = "Data for ID: " + id });
}

[McpServerPromptType]
internal sealed class ConformancePrompts
{
    [McpServerPrompt(Name = "test_simple_prompt"), Description("A simple prompt.")]
    public static string Simple() => "This is a simple prompt for testing.";

    [McpServerPrompt(Name = "test_prompt_with_arguments"), Description("A prompt with arguments.")]
    public static string WithArguments(string arg1, string arg2) => $"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'";
}
