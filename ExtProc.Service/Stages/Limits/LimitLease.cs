using ExtProc.Protocols.Sse;
using ExtProc.Storage;
using ExtProc.Tenancy.Config;

namespace ExtProc.Stages.Limits;

/// <summary>What one request reserved: the counters and their rules, the estimates, and whether it is settled.</summary>
internal sealed class LimitLease
{
    public LimitLease(string reservationId, LimitCounter[] counters, LimitRuleConfig[] rules, long promptEstimate, PriceConfig? price, string? model)
    {
        ReservationId = reservationId;
        Counters = counters;
        Rules = rules;
        PromptEstimate = promptEstimate;
        Price = price;
        Model = model;
    }

    public string ReservationId { get; }

    public LimitCounter[] Counters { get; }

    public LimitRuleConfig[] Rules { get; }

    public long PromptEstimate { get; }

    public PriceConfig? Price { get; }

    public string? Model { get; }

    /// <summary>The MCP tool of a tools/call lease (no usage to read; the slot is freed when the stream ends).</summary>
    public string? Tool { get; init; }

    public bool Settled { get; set; }

    /// <summary>True once the response headers said the body carries usage we must read.</summary>
    public bool ReadingResponse { get; set; }

    public bool StreamedResponse { get; set; }

    /// <summary>We forced include_usage on the request: the usage-only chunk is taken out of the stream.</summary>
    public bool StripUsageChunk { get; set; }

    /// <summary>Usage seen so far in a streamed response (a field: the struct is updated in place).</summary>
    public UsageReader Usage;

    /// <summary>Tokens of generated text seen so far in a streamed response (what a cut stream is charged without usage).</summary>
    public long Generated { get; set; }

    /// <summary>The incremental SSE reader of a streamed response; bounded memory, disposed at settlement.</summary>
    public SseEventReader? Events { get; set; }
}
