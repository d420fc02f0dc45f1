<?php
/**
 * wp-admin: the settings page never echoes the token; the notice after a rollback.
 *
 * @package Molam_Form_Tests
 */

/**
 * Settings page and admin notice, rendered by the real WordPress admin functions.
 */
class AdminTest extends Molam_Form_TestCase {

	protected function setUp(): void {
		parent::setUp();
		wp_set_current_user( 1 );
		Molam_Form_Admin::register();
	}

	protected function tearDown(): void {
		wp_set_current_user( 0 );
		parent::tearDown();
	}

	/**
	 * The settings page as an administrator sees it.
	 *
	 * @return string
	 */
	private function page() {
		ob_start();
		Molam_Form_Admin::render();
		return (string) ob_get_clean();
	}

	public function test_the_settings_page_never_echoes_the_stored_token() {
		$html = $this->page();

		$this->assertStringNotContainsString( getenv( 'MOLAM_TEST_PLUGIN_TOKEN' ), $html );
		$this->assertMatchesRegularExpression( '/<input[^>]*type="password"[^>]*name="molam_form_settings\[token\]"[^>]*value=""/', $html );
		$this->assertStringContainsString( 'A token is stored', $html );
		$this->assertStringContainsString( esc_attr( getenv( 'MOLAM_TEST_CP_URL' ) ), $html );
		$this->assertStringContainsString( 'name="_wpnonce"', $html );
		$this->assertStringContainsString( '3.9.0', $html, 'the status box shows the installed version' );
	}

	public function test_saving_with_an_empty_token_field_keeps_the_stored_token() {
		$saved = Molam_Form_Settings::sanitize(
			array(
				'api_url'     => 'https://ops.molam.example/api/plugins',
				'merchant_id' => getenv( 'MOLAM_TEST_MERCHANT' ),
				'token'       => '',
				'public_key'  => base64_encode( sodium_crypto_sign_publickey( self::$keypair ) ),
			)
		);

		$this->assertSame( getenv( 'MOLAM_TEST_PLUGIN_TOKEN' ), $saved['token'] );
		$this->assertSame( 'https://ops.molam.example/api/plugins/', $saved['api_url'] );
	}

	public function test_a_new_token_replaces_the_old_one_and_forget_clears_it() {
		$this->assertSame( 'new-token', Molam_Form_Settings::sanitize( array( 'token' => ' new-token ' ) )['token'] );
		$this->assertSame( '', Molam_Form_Settings::sanitize( array( 'forget_token' => '1' ) )['token'] );
	}

	public function test_invalid_values_are_refused_and_the_stored_ones_stay() {
		global $wp_settings_errors;
		$wp_settings_errors = array();
		$saved = Molam_Form_Settings::sanitize(
			array(
				'api_url'     => 'http://ops.molam.example/api/plugins/',
				'merchant_id' => 'merchant-42',
				'public_key'  => 'not a key',
				'tables'      => 'wp_molam_orders; DROP TABLE wp_users',
			)
		);

		$this->assertSame( getenv( 'MOLAM_TEST_CP_URL' ), $saved['api_url'] );
		$this->assertSame( getenv( 'MOLAM_TEST_MERCHANT' ), $saved['merchant_id'] );
		$this->assertSame( Molam_Form_Settings::get( 'public_key' ), $saved['public_key'] );
		$this->assertSame( Molam_Form_Settings::get( 'tables' ), $saved['tables'] );
		$this->assertEqualsCanonicalizing( array( 'api_url', 'merchant_id', 'public_key', 'tables' ), array_column( get_settings_errors( Molam_Form_Settings::OPTION ), 'code' ) );
	}

	public function test_a_user_without_manage_options_cannot_open_the_page() {
		$editor = wp_insert_user( array( 'user_login' => 'editor-' . $this->plugin, 'user_pass' => wp_generate_password(), 'role' => 'editor' ) );
		wp_set_current_user( $editor );
		add_filter( 'wp_die_handler', fn() => function ( $message ) {
			throw new RuntimeException( 'wp_die: ' . ( is_string( $message ) ? $message : 'denied' ) );
		} );
		try {
			$this->page();
			$this->fail( 'an editor opened the settings page' );
		} catch ( RuntimeException $e ) {
			ob_end_clean();
			$this->assertStringContainsString( 'not allowed', $e->getMessage() );
		} finally {
			remove_all_filters( 'wp_die_handler' );
			wp_delete_user( $editor );
		}
	}

	public function test_after_a_rollback_the_admin_sees_the_reason_until_dismissed() {
		$this->publish( $this->build_release( '4.0.0', array( 'broken' => true ) ) );
		$this->assertSame( 'success', $this->upgrade()['rollback_status'] );

		ob_start();
		Molam_Form_Admin::rollback_notice();
		$html = (string) ob_get_clean();

		$this->assertStringContainsString( 'rolled the payment plugin back from 4.0.0 to 3.9.0', $html );
		$this->assertStringContainsString( 'smoke test failed: health URL answered HTTP 503', $html );
		$this->assertStringContainsString( 'action=molam_form_dismiss', $html );
		$this->assertStringContainsString( '_wpnonce=', $html );
	}
}
