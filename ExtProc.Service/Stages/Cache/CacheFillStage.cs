using System.Text;
using ExtProc.Pipeline;

namespace ExtProc.Stages.Cache;

/// <summary>
/// Stores the answer of a request <see cref="CacheStage"/> missed, as the client receives it: it runs after routing,
/// so a translated answer is stored translated. Only a complete 200 JSON body without content encoding, within
/// the size cap, is stored; errors, streams, partial or aborted bodies never are. The store is written before the
/// body goes on, so the client's next identical request can already hit.
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
        var json = headers.TryGetSingle("content-type", out var type) && type.Span.IndexOf("application/json"u8) >= 0;
        var encoded = headers.TryGetSingle("content-encoding", out var encoding) && !encoding.Span.SequenceEqual("identity"u8);
        if (!ok || !json || encoded || type.Length > 200 || context.ResponseBodyHandling == ResponseBodyHandling.Streamed)
        {
            exchange.Store.Metrics.Fill("not_ok");
            context.Cache = null;
            return StageResult.ContinueTask;
        }

        exchange.ContentType = Encoding.ASCII.GetString(type.Span);
        context.ResponseBody.Needed = true;
        context.ResponseBodyHandling = ResponseBodyHandling.Buffered;
        return StageResult.ContinueTask;
    }

    public override ValueTask<StageResult> OnResponseBodyAsync(ProcessingContext context)
    {
        if (context.Cache is not { ContentType: { } contentType } exchange)
        {
            return StageResult.ContinueTask;
        }

        context.Cache = null;
        var body = context.ResponseBody;
        if (!body.Complete)
        {
            exchange.Store.Metrics.Fill("partial");
            return StageResult.ContinueTask;
        }

        foreach (var edit in context.ResponseMutations.Sets)
        {
            if (edit.Name == ":status" && !edit.Value.Span.SequenceEqual("200"u8))
            {
                // Routing turned the answer into an error while translating it.
                exchange.Store.Metrics.Fill("not_ok");
                return StageResult.ContinueTask;
            }
        }

        var answer = body.Replacement ?? body.Content;
        if (answer.Length > exchange.MaxEntryBytes)
        {
            exchange.Store.Metrics.Fill("too_large");
            return StageResult.ContinueTask;
        }

        var entry = CacheEntry.Encode(exchange.Tenant, exchange.KeyHash, contentType, answer.Span);
        return StoreAsync(exchange, entry);
    }

    private static async ValueTask<StageResult> StoreAsync(CacheExchange exchange, byte[] entry)
    {
        var stored = await exchange.Store.SetAsync(exchange.StoreKey, entry, exchange.Ttl).ConfigureAwait(false);
        exchange.Store.Metrics.Fill(stored ? "stored" : "failed");
        return StageResult.Continue;
    }
}
