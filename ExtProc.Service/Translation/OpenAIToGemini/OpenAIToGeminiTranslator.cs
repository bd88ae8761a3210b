using System.Buffers;
using ExtProc.Protocols;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>
/// OpenAI Chat Completions client → Gemini generateContent / streamGenerateContent upstream. The body is
/// ours; the routing stage builds the path (<c>models/{model}:generateContent</c>, or
/// <c>:streamGenerateContent?alt=sse</c> when <see cref="TranslationState.Stream"/> is true).
/// </summary>
internal sealed class OpenAIToGeminiTranslator : OpenAIClientTranslator
{
    public static readonly OpenAIToGeminiTranslator Instance = new();

    public override ProtocolKind Upstream => ProtocolKind.Gemini;

    public override IStreamTranslator CreateStreamTranslator(TranslationState state) => new GeminiToOpenAIStream(state);

    protected override string? WriteRequest(ReadOnlySpan<byte> document, in OpenAIRequest request, TranslationState state, int defaultMaxTokens, IBufferWriter<byte> output) =>
        GeminiRequestWriter.Write(document, request, state, output);

    protected override TranslationResult WriteResponse(ReadOnlySpan<byte> document, int status, TranslationState state, IBufferWriter<byte> output) =>
        GeminiResponseReader.WriteOpenAI(document, status, state, output);
}
