using System.Text;
using ExtProc.Buffers;
using ExtProc.Pipeline;

namespace ExtProc.Stages.Cache;

/// <summary>
/// Stores the answer of a request <see cref="CacheStage"/> missed, as the client receives it: it runs after routing
/// and limits, so a translated JSON answer is stored translated and a stream is stored as its chunks went on
/// (after the limits stage took out a usage chunk the client did not ask for). Only a complete 200 without content
/// encoding, within the size cap, is stored; errors, partial or aborted bodies never are. A stream whose events a
/// translator rewrites after the stages have run is not stored (its client bytes are not visible here). The store is
/// written before the last bytes go on, so the client's next identical request can already hit.
/// </summary>
internal sealed class CacheFillStage : Stage
{
    public override string Name => "cache-fill";

    public override ValueTask<StageResult> OnResponseHeadersAsync(ProcessingContext context)
    {
        if (context.Cache is not { } exchange || context.ResponseHeaders is not { } headers)
        {
            return StageResult.ContinueTask;
        }

        var ok = headers.TryGetSingle(":status", out var status) && status.Span.SequenceEqual("200"u8);
        var hasType = headers.TryGetSingle("content-type", out var type) && type.Length <= 200;
        var json = hasType && type.Span.IndexOf("application/json"u8) >= 0;
        var sse = hasType && type.Span.IndexOf("text/event-stream"u8) >= 0;
        var encoded = headers.TryGetSingle("content-encoding", out var encoding) && !encoding.Span.SequenceEqual("identity"u8);
        if (!ok || encoded || !(json || sse) || (sse && context.ResponseRewriter is not null))
        {
            exchange.Store.Metrics.Fill("not_ok");
            Forget(context);
            return StageResult.ContinueTask;
        }

        exchange.ContentType = Encoding.ASCII.GetString(type.Span);
        if (sse)
        {
            // Read chunk by chunk as it passes (as the limits stage does), never holding the stream back.
            exchange.Events = new PooledBufferWriter(4096);
            context.ResponseBody.ObserveChunks = true;
            context.ResponseBodyHandling = ResponseBodyHandling.Streamed;
        }
        else
        {
            context.ResponseBody.Needed = true;
            context.ResponseBodyHandling = ResponseBodyHandling.Buffered;
        }

        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context)
    {
        if (context.Cache is not { ContentType: { } contentType } exchange)
        {
            return StageResult.ContinueTask;
        }

        var body = context.ResponseBody;
        var chunk = body.Replacement ?? body.Content;
        if (exchange.Events is { } events)
        {
            if (events.WrittenCount + chunk.Length > exchange.MaxEntryBytes)
            {
                exchange.Store.Metrics.Fill("too_large");
                Forget(context);
                return StageResult.ContinueTask;
            }

            chunk.Span.CopyTo(events.GetSpan(chunk.Length));
            events.Advance(chunk.Length);
            if (!body.Complete)
            {
                return StageResult.ContinueTask;
            }

            chunk = events.WrittenMemory;
            if (!EndsCleanly(context.Protocol, chunk.Span))
            {
                // A 200 stream can still carry an error event or stop short of its terminal event.
                exchange.Store.Metrics.Fill("not_ok");
                Forget(context);
                return StageResult.ContinueTask;
            }
        }
        else if (!body.Complete)
        {
            exchange.Store.Metrics.Fill("partial");
            Forget(context);
            return StageResult.ContinueTask;
        }

        foreach (var edit in context.ResponseMutations.Sets)
        {
            if (edit.Name == ":status" && !edit.Value.Span.SequenceEqual("200"u8))
            {
                // Routing turned the answer into an error while translating it.
                exchange.Store.Metrics.Fill("not_ok");
                Forget(context);
                return StageResult.ContinueTask;
            }
        }

        if (chunk.Length > exchange.MaxEntryBytes)
        {
            exchange.Store.Metrics.Fill("too_large");
            Forget(context);
            return StageResult.ContinueTask;
        }

        var entry = CacheEntry.Encode(exchange.Tenant, exchange.KeyHash, contentType, chunk.Span);
        Forget(context);
        return StoreAsync(exchange, entry);
    }

    public override ValueTask OnStreamEndAsync(ProcessingContext context)
    {
        if (context.Cache is { ContentType: not null } exchange)
        {
            // Aborted before its end: nothing of it is stored.
            exchange.Store.Metrics.Fill("partial");
        }

        Forget(context);
        return default;
    }

    /// <summary>True when a whole SSE answer has its terminal event and no error event.</summary>
    internal static bool EndsCleanly(Protocols.ProtocolKind protocol, ReadOnlySpan<byte> stream)
    {
        if (stream.IndexOf("event: error"u8) >= 0 || stream.IndexOf("\"type\":\"error\""u8) >= 0)
        {
            return false;
        }

        return protocol == Protocols.ProtocolKind.AnthropicMessages
            ? stream.IndexOf("event: message_stop"u8) >= 0
            : stream.TrimEnd("\r\n "u8).EndsWith("[DONE]"u8);
    }

    private static void Forget(ProcessingContext context)
    {
        context.Cache?.Dispose();
        context.Cache = null;
    }

    private static async ValueTask<StageResult> StoreAsync(CacheExchange exchange, byte[] entry)
    {
        var stored = await exchange.Store.SetAsync(exchange.StoreKey, entry, exchange.Ttl).ConfigureAwait(false);
        exchange.Store.Metrics.Fill(stored ? "stored" : "failed");
        return StageResult.Continue;
    }
}
