using System.Text;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Protocols;
using ExtProc.Stages.Cache;
using ExtProc.Storage;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Config;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Xunit.Abstractions;

namespace ExtProc.Tests.Cache;

/// <summary>
/// C6 at the stage: whatever the store hands back is checked against the tenant and key it was asked for; a corrupt
/// or foreign entry is never served, is deleted, and raises a security event that carries no body and no key.
/// </summary>
public sealed class CacheStageTests : IDisposable
{
    private const string Body = """{"model":"gpt-4o","temperature":0,"messages":[{"role":"user","content":"secret question"}]}""";
    private static readonly CacheConfig Config = CacheConfig.None with { Defaults = CacheTenantSettings.Off with { Enabled = true } };
    private readonly CacheMetrics _metrics = new();
    private readonly ResponseCacheStore _store;
    private readonly FakeLogger _log = new();
    private readonly ITestOutputHelper _output;

    public CacheStageTests(ITestOutputHelper output)
    {
        _output = output;
        _store = new(Config, _metrics, NullLoggerFactory.Instance);
    }

    public void Dispose() => _store.Dispose();

    private static readonly Tenant Acme = new(new TenantConfig("acme", null, PolicyConfig.Unrestricted, []));

    private static ProcessingContext Context(string path = "/v1/chat/completions", ProtocolKind protocol = ProtocolKind.OpenAiChat)
    {
        var headers = new HttpHeaderList();
        headers.Add(":path", Encoding.ASCII.GetBytes(path));
        var context = new ProcessingContext(headers)
        {
            Protocol = protocol,
            Identity = new CallerIdentity(Acme, IdentityKind.ApiKey, Acme.Policy, "acme-main"),
            Request = new RequestSummary { Model = "gpt-4o" },
        };
        context.RequestBody.Append(Encoding.UTF8.GetBytes(Body));
        context.RequestBody.Complete = true;
        return context;
    }

    private CacheStage Stage() => new(Config, _store, null, "v1", _log);

    private static CacheKey KeyOf(ProcessingContext context)
    {
        var identity = context.Identity!;
        var scope = new CacheScope("acme", "v1", identity.Policy.PermissionHash, "gpt-4o", ProtocolKind.OpenAiChat, "/v1/chat/completions", null);
        Assert.True(CacheKeyBuilder.TryCompute(scope, Encoding.UTF8.GetBytes(Body), out var key));
        return key;
    }

    [Fact]
    public async Task Lookup_ValidEntry_AnswersWithTheStoredBody()
    {
        using var context = Context();
        var key = KeyOf(context);
        await _store.SetAsync(key.StoreKey("acme"), CacheEntry.Encode("acme", key.Hash, "application/json", "{\"cached\":true}"u8), TimeSpan.FromMinutes(1));

        var result = await Stage().OnRequestBodyAsync(context);

        Assert.True(result.IsRespond);
        Assert.Equal(200, result.Response!.Status);
        Assert.Equal("{\"cached\":true}", Encoding.UTF8.GetString(result.Response.Body.Span));
        Assert.Equal("hit", context.Decision.Cache);
    }

    [Theory]
    [InlineData("foreign tenant")]
    [InlineData("foreign key")]
    [InlineData("truncated")]
    [InlineData("bit flip")]
    public async Task Lookup_BadEntry_MissDeletedAndSecurityEvent(string kind)
    {
        using var context = Context();
        var key = KeyOf(context);
        var good = CacheEntry.Encode("acme", key.Hash, "application/json", "{\"cached\":true}"u8);
        var bad = kind switch
        {
            "foreign tenant" => CacheEntry.Encode("beta", key.Hash, "application/json", "{\"theirs\":true}"u8),
            "foreign key" => CacheEntry.Encode("acme", new byte[32], "application/json", "{\"other\":true}"u8),
            "truncated" => good[..^3],
            _ => Flip(good),
        };
        await _store.SetAsync(key.StoreKey("acme"), bad, TimeSpan.FromMinutes(1));

        var result = await Stage().OnRequestBodyAsync(context);

        var events = _log.Collector.GetSnapshot().Where(r => r.Id.Name == "CacheEntryRejected").ToList();
        _output.WriteLine($"C6 ({kind}): served {(result.IsRespond ? 1 : 0)}, deleted {(await _store.GetAsync(key.StoreKey("acme"), TimeSpan.FromMinutes(1)) is null)}, security events {events.Count}");
        Assert.False(result.IsRespond);
        Assert.Equal("miss", context.Decision.Cache);
        Assert.NotNull(context.Cache);
        Assert.Null(await _store.GetAsync(key.StoreKey("acme"), TimeSpan.FromMinutes(1)));
        var message = Assert.Single(events).Message;
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, events[0].Level);
        Assert.DoesNotContain("secret", message, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToHexStringLower(key.Hash), message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_HitMissBypassAndEviction_CountedWithTheirTags()
    {
        var seen = new List<string>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, _metrics.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var text = instrument.Name;
            foreach (var tag in tags)
            {
                text += $" {tag.Key}={tag.Value}";
            }

            lock (seen)
            {
                seen.Add(text);
            }
        });
        listener.Start();

        using (var miss = Context())
        {
            await Stage().OnRequestBodyAsync(miss);
        }

        using (var context = Context())
        {
            var key = KeyOf(context);
            await _store.SetAsync(key.StoreKey("acme"), CacheEntry.Encode("beta", key.Hash, "application/json", "{}"u8), TimeSpan.FromMinutes(1));
            await Stage().OnRequestBodyAsync(context);
            await _store.SetAsync(key.StoreKey("acme"), CacheEntry.Encode("acme", key.Hash, "application/json", "{}"u8), TimeSpan.FromMinutes(1));
        }

        using (var hit = Context())
        {
            await Stage().OnRequestBodyAsync(hit);
        }

        using (var stream = Context("/v1beta/models/gemini-2.0-flash:streamGenerateContent", ProtocolKind.Gemini))
        {
            await Stage().OnRequestBodyAsync(stream);
        }

        Assert.Equal(
            [
                "extproc.cache.lookups result=miss reason=",
                "extproc.cache.evictions reason=foreign",
                "extproc.cache.lookups result=miss reason=",
                "extproc.cache.lookups result=hit reason=",
                "extproc.cache.lookups result=bypass reason=stream",
            ],
            seen);
    }

    [Theory]
    [InlineData("complete 200", true)]
    [InlineData("partial body", false)]
    [InlineData("status 500", false)]
    [InlineData("status 201", false)]
    [InlineData("gzip", false)]
    [InlineData("event stream", true)]
    [InlineData("event stream rewritten after the stages", false)]
    [InlineData("over the size cap", false)]
    [InlineData("translated into an error", false)]
    public async Task Fill_OnlyACompletePlain200_IsStored(string kind, bool stored)
    {
        var config = Config with { MaxEntryBytes = 256 };
        using var context = Context();
        var stage = new CacheStage(config, _store, null, "v1", _log);
        Assert.False((await stage.OnRequestBodyAsync(context)).IsRespond);
        var exchange = Assert.IsType<CacheExchange>(context.Cache);

        var headers = new HttpHeaderList();
        headers.Add(":status", Encoding.ASCII.GetBytes(kind switch { "status 500" => "500", "status 201" => "201", _ => "200" }));
        headers.Add("content-type", Encoding.ASCII.GetBytes(kind.StartsWith("event stream", StringComparison.Ordinal) ? "text/event-stream" : "application/json"));
        if (kind == "event stream rewritten after the stages")
        {
            context.ResponseRewriter = new Rewriter();
        }
        if (kind == "gzip")
        {
            headers.Add("content-encoding", "gzip"u8.ToArray());
        }

        context.ResponseHeaders = headers;
        var fill = new CacheFillStage();
        await fill.OnResponseHeadersAsync(context);
        var answer = kind switch
        {
            "over the size cap" => "{\"a\":\"" + new string('x', 300) + "\"}",
            _ when kind.StartsWith("event stream", StringComparison.Ordinal) => "data: {\"id\":\"c1\"}\n\ndata: [DONE]\n\n",
            _ => "{\"id\":\"c1\"}",
        };
        context.ResponseBody.Append(Encoding.UTF8.GetBytes(answer));
        context.ResponseBody.Complete = kind != "partial body";
        if (kind == "translated into an error")
        {
            context.ResponseMutations.Set(":status", "502");
        }

        await fill.OnResponseBodyAsync(context);

        var entry = await _store.GetAsync(exchange.StoreKey, TimeSpan.FromMinutes(1));
        _output.WriteLine($"fill ({kind}): stored {entry is not null}");
        Assert.Equal(stored, entry is not null);
        Assert.Null(context.Cache);
    }

    [Theory]
    [InlineData(nameof(ProtocolKind.OpenAiChat), "data: {\"choices\":[]}\n\ndata: [DONE]\n\n", true)]
    [InlineData(nameof(ProtocolKind.OpenAiChat), "data: {\"choices\":[]}\n\n", false)]
    [InlineData(nameof(ProtocolKind.OpenAiChat), "data: {\"error\":{\"type\":\"error\"}}\n\ndata: [DONE]\n\n", false)]
    [InlineData(nameof(ProtocolKind.AnthropicMessages), "event: message_start\ndata: {}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true)]
    [InlineData(nameof(ProtocolKind.AnthropicMessages), "event: message_start\ndata: {}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n", false)]
    [InlineData(nameof(ProtocolKind.AnthropicMessages), "event: message_start\ndata: {}\n\n", false)]
    public void EndsCleanly_OnlyAWholeStreamWithoutErrorEvents(string protocol, string stream, bool clean) =>
        Assert.Equal(clean, CacheFillStage.EndsCleanly(Enum.Parse<ProtocolKind>(protocol), Encoding.UTF8.GetBytes(stream)));

    [Fact]
    public void Read_EveryTruncationAndEveryBitFlip_IsNeverValid()
    {
        var hash = new byte[32];
        hash[0] = 7;
        var entry = CacheEntry.Encode("acme", hash, "application/json", "{\"id\":\"c1\",\"choices\":[]}"u8);
        Assert.Equal(EntryCheck.Valid, CacheEntry.Read(entry, "acme", hash, out _, out _));
        var accepted = 0;
        for (var length = 0; length < entry.Length; length++)
        {
            accepted += CacheEntry.Read(entry[..length], "acme", hash, out _, out _) == EntryCheck.Valid ? 1 : 0;
        }

        for (var i = 0; i < entry.Length; i++)
        {
            for (var bit = 0; bit < 8; bit++)
            {
                var copy = entry.ToArray();
                copy[i] ^= (byte)(1 << bit);
                accepted += CacheEntry.Read(copy, "acme", hash, out _, out _) == EntryCheck.Valid ? 1 : 0;
            }
        }

        _output.WriteLine($"C6 (entry format): {entry.Length} truncations and {entry.Length * 8} single-bit flips: accepted {accepted}");
        Assert.Equal(0, accepted);
        Assert.Equal(EntryCheck.Foreign, CacheEntry.Read(entry, "acmf", hash, out _, out _));
        Assert.Equal(EntryCheck.Foreign, CacheEntry.Read(entry, "acme", new byte[32], out _, out _));
    }

    private sealed class Rewriter : IStreamedBodyRewriter
    {
        public bool TryRewrite(ReadOnlyMemory<byte> chunk, bool endOfStream, out ReadOnlyMemory<byte> replacement)
        {
            replacement = chunk;
            return true;
        }
    }

    private static byte[] Flip(byte[] value)
    {
        var copy = value.ToArray();
        copy[^12] ^= 0x01;
        return copy;
    }
}
