using System.Buffers;
using System.Net;
using ExtProc.Translation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ExtProc.Tests.Translation;

/// <summary>
/// Two real loopback HTTP servers for SDK tests of the translators: an upstream that answers with a
/// provider fixture (SSE written in small flushed pieces, so the hop sees arbitrary chunk boundaries),
/// and a hop in front of it that does what the routing stage will do with a translator: translate the
/// request body, forward it, and translate the buffered or streamed response back. The pipeline wiring
/// itself is the routing issue's; this proves what the real SDKs make of our bytes.
/// </summary>
internal sealed class TranslatingHop : IAsyncDisposable
{
    private readonly WebApplication _upstream;
    private readonly WebApplication _hop;
    private readonly HttpClient _client = new();

    private TranslatingHop(WebApplication upstream, WebApplication hop)
    {
        _upstream = upstream;
        _hop = hop;
    }

    public Uri BaseUri { get; private set; } = null!;

    /// <summary>The translated request body the upstream received last.</summary>
    public byte[]? LastUpstreamRequest { get; private set; }

    public static async Task<TranslatingHop> StartAsync(TranslationDirection direction, RequestTranslationInput input, byte[] buffered, byte[] stream)
    {
        TranslatingHop? self = null;
        var upstream = Build();
        upstream.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            self!.LastUpstreamRequest = body.ToArray();
            var streaming = context.Request.Headers["x-test-stream"] == "1";
            context.Response.ContentType = streaming ? "text/event-stream" : "application/json";
            var bytes = streaming ? stream : buffered;
            for (var offset = 0; offset < bytes.Length; offset += 37)
            {
                await context.Response.Body.WriteAsync(bytes.AsMemory(offset, Math.Min(37, bytes.Length - offset)));
                await context.Response.Body.FlushAsync();
            }
        });
        await upstream.StartAsync();
        var upstreamUri = new Uri(upstream.Urls.First());

        var hop = Build();
        hop.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var translated = new ArrayBufferWriter<byte>();
            var result = direction.TranslateRequest(new ReadOnlySequence<byte>(body.ToArray()), input, translated, out var state);
            if (result.Status == TranslationStatus.Failed)
            {
                context.Response.StatusCode = result.HttpStatus;
                return;
            }

            using var forward = new HttpRequestMessage(HttpMethod.Post, new Uri(upstreamUri, "/upstream"))
            {
                Content = new ByteArrayContent(result.Status == TranslationStatus.Unchanged ? body.ToArray() : translated.WrittenSpan.ToArray()),
            };
            forward.Headers.Add("x-test-stream", state!.Stream ? "1" : "0");
            using var answer = await self!._client.SendAsync(forward, HttpCompletionOption.ResponseHeadersRead);
            await using var upstreamBody = await answer.Content.ReadAsStreamAsync();
            if (answer.Content.Headers.ContentType?.MediaType == "text/event-stream")
            {
                context.Response.ContentType = "text/event-stream";
                using var translator = direction.CreateStreamTranslator(state);
                var buffer = new byte[512];
                var output = new ArrayBufferWriter<byte>();
                while (true)
                {
                    var read = await upstreamBody.ReadAsync(buffer);
                    output.ResetWrittenCount();
                    translator.Process(new ReadOnlySequence<byte>(buffer, 0, read), read == 0, output);
                    await context.Response.Body.WriteAsync(output.WrittenMemory);
                    await context.Response.Body.FlushAsync();
                    if (read == 0)
                    {
                        break;
                    }
                }

                return;
            }

            using var all = new MemoryStream();
            await upstreamBody.CopyToAsync(all);
            var response = new ArrayBufferWriter<byte>();
            var translatedResponse = direction.TranslateResponse(new ReadOnlySequence<byte>(all.ToArray()), (int)answer.StatusCode, state, response);
            context.Response.StatusCode = translatedResponse.HttpStatus;
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(translatedResponse.Status == TranslationStatus.Unchanged ? all.ToArray() : response.WrittenMemory.ToArray());
        });
        await hop.StartAsync();
        self = new TranslatingHop(upstream, hop) { BaseUri = new Uri(hop.Urls.First()) };
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await _hop.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static WebApplication Build()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        return builder.Build();
    }
}
