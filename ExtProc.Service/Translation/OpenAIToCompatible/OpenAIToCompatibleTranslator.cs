using System.Buffers;
using System.Text.Json;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToCompatible;

/// <summary>
/// OpenAI Chat Completions client → an OpenAI-compatible upstream with known quirks (DeepSeek, Qwen /
/// DashScope compatible mode, Mistral, Azure OpenAI). Bodies that need nothing pass untouched
/// (<see cref="TranslationStatus.Unchanged"/>); the deployment path, <c>api-key</c> header and
/// <c>api-version</c> of Azure are the routing stage's (the body's model is ignored there).
/// </summary>
internal sealed class OpenAIToCompatibleTranslator : TranslationDirection
{
    private static readonly OpenAIToCompatibleTranslator[] Instances =
    [
        new(UpstreamDialect.Standard), new(UpstreamDialect.DeepSeek), new(UpstreamDialect.Qwen), new(UpstreamDialect.Mistral), new(UpstreamDialect.Azure),
    ];

    private OpenAIToCompatibleTranslator(UpstreamDialect dialect) => Dialect = dialect;

    public static OpenAIToCompatibleTranslator For(UpstreamDialect dialect) => Instances[(int)dialect];

    public override ProtocolKind Client => ProtocolKind.OpenAiChat;

    public override ProtocolKind Upstream => ProtocolKind.OpenAiChat;

    public override UpstreamDialect Dialect { get; }

    public override TranslationResult TranslateRequest(
        ReadOnlySequence<byte> clientBody, in RequestTranslationInput input, IBufferWriter<byte> output, out TranslationState? state)
    {
        state = null;
        var document = JsonRead.Contiguous(clientBody, out var rented);
        var request = default(OpenAIRequest);
        var scratch = new Buffers.PooledBufferWriter();
        try
        {
            if (OpenAIRequest.Read(document, out request, keepMessageFields: true) is { } refused)
            {
                return TranslationResult.Fail(TranslationErrors.InvalidBody, refused);
            }

            var clientModel = JsonRead.GetString(document, request.Model) ?? string.Empty;
            var translated = new TranslationState(Dialect, clientModel, input.UpstreamModel ?? clientModel, input.RequestId, input.CreatedUnixSeconds)
            {
                Stream = request.IsStream(document),
                IncludeUsage = request.IncludeUsage(document),
            };
            state = translated;

            // The model name is the routing stage's business (a header or path for Azure); the body keeps the client's.
            var writer = JsonOut.Writer(scratch);
            var changed = CompatibleRequestWriter.Write(writer, document, request, Dialect);
            writer.Flush();
            if (!changed)
            {
                return TranslationResult.Unchanged();
            }

            output.Write(scratch.WrittenSpan);
            return TranslationResult.Rewritten();
        }
        catch (JsonException)
        {
            state = null;
            return TranslationResult.Fail(TranslationErrors.InvalidBody, "The request body is not valid JSON for this API.");
        }
        finally
        {
            request.Dispose();
            scratch.Dispose();
            JsonRead.Release(rented, document.Length);
        }
    }

    public override TranslationResult TranslateResponse(ReadOnlySequence<byte> upstreamBody, int status, TranslationState state, IBufferWriter<byte> output)
    {
        var document = JsonRead.Contiguous(upstreamBody, out var rented);
        try
        {
            return CompatibleResponse.Normalize(document, status, output);
        }
        finally
        {
            JsonRead.Release(rented, document.Length);
        }
    }

    public override IStreamTranslator CreateStreamTranslator(TranslationState state) => new CompatibleStream(state);
}
